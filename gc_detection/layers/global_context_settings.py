"""The settings of the global-context module, as plain Python.

Framework adapters fill it (the OD API adapter from the pipeline.config
extension `[gc_detection.protos.global_context] { ... }`); the feature
extractors and backbones take it as an argument. Defaults are the paper's (and the .proto's).
"""
import dataclasses
import logging
from typing import Optional

from gc_detection.layers import GlobalContextAttention

BOTTLENECK = 'bottleneck'
GLOROT = 'glorot'
ZERO_OUTPUT = 'zero_output'
INITIALIZATIONS = (BOTTLENECK, GLOROT, ZERO_OUTPUT)


@dataclasses.dataclass(frozen=True)
class GlobalContextSettings:
  """See protos/global_context.proto for the meaning of every field.

  chunk_threshold None means never chunk (0 in the .proto).
  source_block '' means the backbone's default block.
  """
  num_heads: int = 4
  num_layers: int = 1
  bottleneck_ratio: int = 4
  use_residual: bool = True
  attention_dropout: float = 0.0
  chunk_threshold: Optional[int] = 4096
  chunk_size: int = 1024
  initialization: str = BOTTLENECK
  source_block: str = ''
  fold_batch_norm: bool = True
  ignore_padding: bool = True

  def layer_kwargs(self):
    """Keyword arguments of GlobalContextAttention for these settings."""
    return dict(
        num_heads=self.num_heads,
        num_layers=self.num_layers,
        bottleneck_ratio=self.bottleneck_ratio,
        use_residual=self.use_residual,
        attention_dropout=self.attention_dropout,
        chunk_size=self.chunk_size,
        chunk_threshold=self.chunk_threshold,
        output_kernel_initializer=(
            'zeros' if self.initialization == ZERO_OUTPUT else 'glorot_uniform'))


# Bottleneck blocks per ResNet v1 stage (conv2..conv5).
STAGE_BLOCKS = {
    'resnet_v1_50': {'conv2': 3, 'conv3': 4, 'conv4': 6, 'conv5': 3},
    'resnet_v1_101': {'conv2': 3, 'conv3': 4, 'conv4': 23, 'conv5': 3},
    'resnet_v1_152': {'conv2': 3, 'conv3': 8, 'conv4': 36, 'conv5': 3},
}


class InvalidGlobalContextSettings(ValueError):
  """A GlobalContextSettings value does not suit the model being built."""


# Values no sensible model has; most likely typos, and each would exhaust the
# memory of any machine (16 stacked layers at 1024 px keep 16 x 268 MB of
# attention weights for the backward pass; a chunk of 65536 queries over as
# many keys is 68 GB).
_UPPER_LIMITS = {
    'num_layers': (16, 'each stacked layer keeps its attention weights for the '
                   'backward pass'),
    'chunk_size': (65536, 'a chunk holds chunk_size x H*W attention weights per '
                   'head'),
}


def checked_settings(field_prefix, *, chunk_threshold, **values):
  """GlobalContextSettings from a framework's config values, each range-checked.

  Args:
    field_prefix: how the user's config names the fields' parent, e.g.
      '[gc_detection.protos.global_context] ' or
      'task.model.backbone.resnet_gc.global_context.'; every message starts
      with it and the field name.
    chunk_threshold: 0 means never chunk (stored as None).
    **values: the other GlobalContextSettings fields; `initialization` in any
      case ('BOTTLENECK' or 'bottleneck').

  Raises:
    InvalidGlobalContextSettings: naming the field, the value and the range.
  """
  for field in ('num_heads', 'num_layers', 'bottleneck_ratio', 'chunk_size'):
    value = values[field]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
      raise InvalidGlobalContextSettings(
          f'{field_prefix}{field}: must be a positive integer, got {value!r}')
  for field, (largest, why) in _UPPER_LIMITS.items():
    if values[field] > largest:
      raise InvalidGlobalContextSettings(
          f'{field_prefix}{field}: must be at most {largest}, got '
          f'{values[field]} ({why})')
  if not isinstance(chunk_threshold, int) or chunk_threshold < 0:
    raise InvalidGlobalContextSettings(
        f'{field_prefix}chunk_threshold: must be >= 0 (0 = never chunk), got '
        f'{chunk_threshold!r}')
  if not 0.0 <= values['attention_dropout'] < 1.0:
    raise InvalidGlobalContextSettings(
        f'{field_prefix}attention_dropout: must be in [0, 1), got '
        f'{values["attention_dropout"]}')
  initialization = str(values.pop('initialization')).lower()
  if initialization not in INITIALIZATIONS:
    raise InvalidGlobalContextSettings(
        f'{field_prefix}initialization: {initialization!r} is not one of '
        f'{", ".join(INITIALIZATIONS)}')
  return GlobalContextSettings(chunk_threshold=chunk_threshold or None,
                               initialization=initialization, **values)


def check_source_block(settings, backbone_name, stage, channels):
  """Returns the bottleneck block BOTTLENECK initialisation copies.

  The block must be in `stage` (the stage whose output feeds the module) and
  not its first block (whose reduce convolution reads the previous stage's
  channels), and its reduce convolution (C -> C/4) must match the module's
  Q, K, V (C -> C / bottleneck_ratio).

  Raises:
    InvalidGlobalContextSettings: naming the field and value.
  """
  num_blocks = STAGE_BLOCKS[backbone_name][stage]
  default = f'{stage}_block{num_blocks}'
  block = settings.source_block or default
  valid = [f'{stage}_block{i}' for i in range(2, num_blocks + 1)]
  if block not in valid:
    raise InvalidGlobalContextSettings(
        f'source_block: {block!r} is not a block of {backbone_name} that can '
        f'initialise the module on {stage} (C={channels}); choose one of '
        f'{valid[0]} .. {valid[-1]} (default {default})')
  if (settings.initialization == BOTTLENECK and
      settings.bottleneck_ratio != 4):
    raise InvalidGlobalContextSettings(
        f'bottleneck_ratio: {settings.bottleneck_ratio} does not match '
        f'{block}\'s reduce convolution ({channels} -> {channels // 4}) that '
        'initialization BOTTLENECK copies into Q, K and V; use bottleneck_ratio '
        '4 or another initialization')
  return block


def make_global_context_layer(settings, channels, name='global_context',
                              kernel_regularizer=None,
                              layer_class=GlobalContextAttention, **layer_args):
  """Returns an (unbuilt) GlobalContextAttention for `channels` inputs.

  kernel_regularizer: the detector's weight decay for the module's kernels.
  layer_class: GlobalContextAttention or a subclass (an adapter's), built
    with the settings' arguments and `layer_args`.

  Raises:
    InvalidGlobalContextSettings: a value is out of range or does not divide
      the channels (the message names the setting and the numbers).
  """
  try:
    layer = layer_class(name=name, kernel_regularizer=kernel_regularizer,
                        **settings.layer_kwargs(), **layer_args)
    layer.check_channels(channels)
  except ValueError as error:
    raise InvalidGlobalContextSettings(str(error)) from error
  if settings.initialization == BOTTLENECK:
    logging.info('gc_detection: initialization BOTTLENECK: the global-context '
                 'module is copied from a ResNet bottleneck block right after '
                 'the pretrained backbone is restored (fine_tune_checkpoint of '
                 'the OD API, task.init_checkpoint of Model Garden); without '
                 'one (and when training resumes from model_dir) it keeps its '
                 'Glorot start or its checkpointed weights.')
  return layer
