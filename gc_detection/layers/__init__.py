"""Keras layers of gc_detection (pure Keras; no OD API import)."""
from gc_detection.layers.batch_norm_folding import BatchNormParams
from gc_detection.layers.global_context_attention import GlobalContextAttention
