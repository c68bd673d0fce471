"""GlobalContextAttention: the paper's self-attention over a backbone feature map.

Lee, Kim, Jung, "Improving Object Detection Quality by Incorporating Global
Contexts via Self-Attention" (Electronics 2021, 10, 90), section 3. Every
spatial cell of an (N, H, W, C) feature map is a token; each layer projects the
tokens to queries, keys and values of C / bottleneck_ratio channels, runs
multi-head scaled dot-product attention over all H*W tokens, projects back to C
channels and (by default) adds the result to its input.

Pure Keras (tf.keras 2.x): this module knows nothing of the OD API.
"""
import math
from typing import Optional

import numpy as np
import tensorflow as tf

from gc_detection.layers import attention_ops
from gc_detection.layers import batch_norm_folding
from gc_detection.layers import valid_region


def _is_training(training):
  """True only for a training flag that is True (a bool or a constant tensor)."""
  if tf.is_tensor(training):
    training = tf.get_static_value(training)
  return bool(training)


def _fresh(initializer):
  """A new instance of a Keras initializer (own random stream when unseeded)."""
  return initializer.__class__.from_config(initializer.get_config())


def _check_positive_int(name, value):
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
    raise ValueError(f'{name} must be a positive integer, got {value!r}')
  return int(value)


@tf.keras.utils.register_keras_serializable(package='gc_detection')
class GlobalContextAttention(tf.keras.layers.Layer):
  """Multi-head self-attention over all spatial positions of a feature map.

  Input: (N, H, W, C); H and W may be unknown until run time. Output: the same
  shape, in the layer's compute dtype. With `return_attention_scores=True`,
  `call` also returns one (N, num_heads, H*W, H*W) float32 tensor of attention
  weights per stacked layer (queries along axis 2, keys along axis 3, both in
  row-major H, W order).

  Per stacked layer, with D = C / bottleneck_ratio and d = D / num_heads:
    q, k, v = x Wq + bq, x Wk + bk, x Wv + bv            (N, HW, D) each
    a_h = softmax(q_h k_h^T / sqrt(d)) v_h               (N, HW, d) per head
    y = concat_h(a_h) Wo + bo                            (N, HW, C)
    x <- x + y  (use_residual) or x <- y

  Memory: when H*W > chunk_threshold, queries are processed `chunk_size` at a
  time, so only a (N, heads, chunk_size, H*W) slice of scores exists at once;
  in training each chunk's attention is recomputed in the backward pass instead
  of being kept. The result is the same as the unchunked computation.

  Padding: called with `valid_shape` (N, 2), image n's own cells are the
  top-left valid_shape[n] block of its map and the rest is padding. Padded
  keys are left out of every softmax and padded cells get no update (they
  pass through unchanged), so an image's valid outputs are a function of its
  valid inputs alone: whatever the padding holds, and whichever images share
  its batch. Outside XLA the attention runs only on the smallest top-left
  block holding every image's region (its cost follows the images, not the
  canvas); under XLA (static shapes) it runs on the whole map, masked. The
  attention weights returned are zero for every padded query and key.

  Mixed precision: under a mixed policy the projections and matmuls run in the
  compute dtype, the softmax in float32.

  Args:
    num_heads: attention heads per layer (paper's best: 4).
    num_layers: stacked attention layers (paper's best: 1).
    bottleneck_ratio: C / D, the channel reduction of Q, K and V (paper: 4).
    use_residual: add each layer's output to its input.
    attention_dropout: dropout rate on the attention weights, in training.
    chunk_size: queries per chunk on the chunked path.
    chunk_threshold: H*W above which the chunked path is taken; None never
      chunks.
    kernel_initializer: initializer of the Q, K, V projection kernels.
    output_kernel_initializer: initializer of the output projection kernel
      ('zeros' makes every layer start as the identity when use_residual).
    bias_initializer: initializer of every bias.
    kernel_regularizer: regularizer of the Q, K, V and output kernels (the
      detector's weight decay), or None.
    bias_regularizer: regularizer of every bias, or None.

  Weights: per stacked layer i, `block_<i>/qkv_kernel` (C, 3, heads, d),
  `block_<i>/qkv_bias` (3, heads, d), `block_<i>/output_kernel` (heads, d, C)
  and `block_<i>/output_bias` (C,). ("block_<i>" is the checkpoint name of
  stacked layer i, kept so that trained checkpoints keep restoring.)
  """

  def __init__(self,
               num_heads: int = 4,
               num_layers: int = 1,
               bottleneck_ratio: int = 4,
               use_residual: bool = True,
               attention_dropout: float = 0.0,
               chunk_size: int = 1024,
               chunk_threshold: Optional[int] = 4096,
               kernel_initializer='glorot_uniform',
               output_kernel_initializer='glorot_uniform',
               bias_initializer='zeros',
               kernel_regularizer=None,
               bias_regularizer=None,
               **kwargs):
    super().__init__(**kwargs)
    self.num_heads = _check_positive_int('num_heads', num_heads)
    self.num_layers = _check_positive_int('num_layers', num_layers)
    self.bottleneck_ratio = _check_positive_int('bottleneck_ratio', bottleneck_ratio)
    self.chunk_size = _check_positive_int('chunk_size', chunk_size)
    self.chunk_threshold = (None if chunk_threshold is None else
                            _check_positive_int('chunk_threshold', chunk_threshold))
    if not 0.0 <= float(attention_dropout) < 1.0:
      raise ValueError(
          f'attention_dropout must be in [0, 1), got {attention_dropout!r}')
    self.attention_dropout = float(attention_dropout)
    self.use_residual = bool(use_residual)
    self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
    self.output_kernel_initializer = tf.keras.initializers.get(
        output_kernel_initializer)
    self.bias_initializer = tf.keras.initializers.get(bias_initializer)
    self.kernel_regularizer = tf.keras.regularizers.get(kernel_regularizer)
    self.bias_regularizer = tf.keras.regularizers.get(bias_regularizer)
    self.input_spec = tf.keras.layers.InputSpec(ndim=4)
    self._layer_weights = []

  def build(self, input_shape):
    input_shape = tf.TensorShape(input_shape)
    if input_shape.rank != 4:
      raise ValueError('GlobalContextAttention expects inputs of rank 4 '
                       f'(N, H, W, C), got shape {input_shape}')
    channels = input_shape[-1]
    if channels is None:
      raise ValueError('GlobalContextAttention needs the channel dimension C '
                       f'to be known, got shape {input_shape}')
    self.check_channels(channels)
    key_channels = channels // self.bottleneck_ratio
    self.channels = channels
    self.key_channels = key_channels
    self.head_channels = key_channels // self.num_heads
    self.input_spec = tf.keras.layers.InputSpec(ndim=4, axes={-1: channels})
    self._layer_weights = []
    heads, head_channels = self.num_heads, self.head_channels
    for index in range(self.num_layers):
      # Q, K and V share one kernel so the projection is one matmul. Heads
      # have their own axis, so a checkpoint shows how many there are.
      self._layer_weights.append({
          'qkv_kernel': self.add_weight(
              f'block_{index}/qkv_kernel',
              shape=(channels, 3, heads, head_channels),
              initializer=self._stacked_qkv_initializer,
              regularizer=self.kernel_regularizer),
          'qkv_bias': self.add_weight(
              f'block_{index}/qkv_bias', shape=(3, heads, head_channels),
              initializer=_fresh(self.bias_initializer),
              regularizer=self.bias_regularizer),
          'output_kernel': self.add_weight(
              f'block_{index}/output_kernel',
              shape=(heads, head_channels, channels),
              initializer=_fresh(self.output_kernel_initializer),
              regularizer=self.kernel_regularizer),
          'output_bias': self.add_weight(
              f'block_{index}/output_bias', shape=(channels,),
              initializer=_fresh(self.bias_initializer),
              regularizer=self.bias_regularizer),
      })
    super().build(input_shape)

  def check_channels(self, channels):
    """Raises ValueError unless C=channels suits bottleneck_ratio and num_heads."""
    if channels % self.bottleneck_ratio:
      raise ValueError(
          f'channels C={channels} must be divisible by bottleneck_ratio='
          f'{self.bottleneck_ratio}')
    key_channels = channels // self.bottleneck_ratio
    if key_channels % self.num_heads:
      raise ValueError(
          f'C / bottleneck_ratio = {channels} / {self.bottleneck_ratio} = '
          f'{key_channels} must be divisible by num_heads={self.num_heads}')

  def _stacked_qkv_initializer(self, shape, dtype=None):
    """Initialises Q, K and V as three independent (C, D) kernels.

    Each part gets the fan-in/fan-out of one projection (C -> D), and its own
    initializer instance: an unseeded Keras initializer returns the same
    values every time the same instance is called.
    """
    channels, _, heads, head_channels = shape
    parts = [_fresh(self.kernel_initializer)((channels, heads * head_channels),
                                             dtype=dtype) for _ in range(3)]
    return tf.reshape(tf.stack(parts, axis=1), shape)

  def layer_weights(self, index=0):
    """The variables of stacked layer `index`: {qkv_kernel, qkv_bias,
    output_kernel, output_bias} (shapes in the class docstring)."""
    return dict(self._layer_weights[index])

  def call(self, inputs, training=None, return_attention_scores=False,
           valid_shape=None):
    """Refines an (N, H, W, C) map; see the class docstring for outputs.

    Args:
      inputs: (N, H, W, C).
      training: the Keras training flag (dropout).
      return_attention_scores: also return the attention weights.
      valid_shape: None (every cell is the image), or (N, 2) int: rows and
        columns of the top-left block of cells that is each image's own;
        the rest is padding (see the class docstring). Clipped to (H, W).
    """
    training = _is_training(training)
    if valid_shape is None:
      outputs, all_scores = self._refine(inputs, training, return_attention_scores)
    else:
      outputs, all_scores = self._refine_valid_regions(
          inputs, valid_shape, training, return_attention_scores)
    outputs.set_shape(inputs.shape)
    if return_attention_scores:
      return outputs, all_scores
    return outputs

  def _refine(self, maps, training, want_scores, valid_tokens=None):
    """The stacked layers on (N, H, W, C) maps; returns (maps, [weights]).

    valid_tokens: None, or bool (N, H*W): only these tokens are attended
      to and updated; the others pass through unchanged.
    """
    dynamic_shape = tf.shape(maps)
    num_tokens_static = None
    if maps.shape[1] is not None and maps.shape[2] is not None:
      num_tokens_static = maps.shape[1] * maps.shape[2]
    tokens = tf.reshape(maps, [dynamic_shape[0], -1, self.channels])
    key_mask = None
    if valid_tokens is not None:
      key_mask = valid_tokens[:, tf.newaxis, tf.newaxis, :]  # (N, 1, 1, L)
    all_scores = []
    for index in range(self.num_layers):
      attended, scores = self._attend(
          tokens, index, num_tokens_static, training, want_scores, key_mask)
      updated = tokens + attended if self.use_residual else attended
      if valid_tokens is not None:
        updated = tf.where(valid_tokens[:, :, tf.newaxis], updated, tokens)
        if scores is not None:
          scores *= tf.cast(valid_tokens, scores.dtype)[:, tf.newaxis, :, tf.newaxis]
      tokens = updated
      all_scores.append(scores)
    return tf.reshape(tokens, dynamic_shape), all_scores

  def _refine_valid_regions(self, inputs, valid_shape, training, want_scores):
    """_refine that sees only each image's valid region.

    Outside XLA the batch is cropped to the smallest top-left block holding
    every region (so the cost follows the images, not the canvas), attended
    with the padding inside that block masked, and put back; under XLA
    (static shapes) the whole map is attended, masked.
    """
    valid_shape = tf.convert_to_tensor(valid_shape)
    if not valid_shape.shape.is_compatible_with([inputs.shape[0], 2]):
      raise ValueError('valid_shape must have shape (N, 2) (valid rows and columns of '
                       f'cells per image) for inputs of shape {inputs.shape}, got '
                       f'{valid_shape.shape}')
    height, width = tf.shape(inputs)[1], tf.shape(inputs)[2]
    valid_shape = valid_region.clipped(valid_shape, height, width)
    if valid_region.in_xla_context():
      return self._refine(inputs, training, want_scores,
                          valid_region.token_mask(valid_shape, height, width))
    rows, columns = valid_region.batch_extent(valid_shape)
    region = inputs[:, :rows, :columns]
    refined, all_scores = self._refine(region, training, want_scores,
                                       valid_region.token_mask(valid_shape, rows, columns))
    if want_scores:
      all_scores = [valid_region.on_full_grid(scores, (rows, columns), (height, width))
                    for scores in all_scores]
    return valid_region.put_back(refined, inputs, rows, columns), all_scores

  # The stages of one stacked layer, in order; call() composes them, and the
  # attention benchmark times each.

  def project_qkv(self, tokens, index=0):
    """Fused Q, K, V projection of layer `index`: (N, L, C) -> (N, L, 3 * D)."""
    weights = self._layer_weights[index]
    dtype = tokens.dtype
    qkv = tf.matmul(tokens, tf.reshape(tf.cast(weights['qkv_kernel'], dtype),
                                       [self.channels, 3 * self.key_channels]))
    return tf.nn.bias_add(qkv, tf.reshape(tf.cast(weights['qkv_bias'], dtype), [-1]))

  def split_heads(self, qkv):
    """(N, L, 3 * D) -> query, key, value, each (N, heads, L, d).

    The query comes scaled by 1 / sqrt(d).
    """
    batch, num_tokens = tf.shape(qkv)[0], tf.shape(qkv)[1]
    qkv = tf.reshape(qkv, [batch, num_tokens, 3, self.num_heads, self.head_channels])
    query, key, value = tf.unstack(tf.transpose(qkv, [2, 0, 3, 1, 4]))
    # tf.constant, not tf.cast: a Python float cast goes through float32.
    query *= tf.constant(1.0 / math.sqrt(self.head_channels), qkv.dtype)
    return query, key, value

  def merge_heads(self, context):
    """(N, heads, L, d) -> (N, L, D), heads concatenated in order."""
    batch, num_tokens = tf.shape(context)[0], tf.shape(context)[2]
    return tf.reshape(tf.transpose(context, [0, 2, 1, 3]),
                      [batch, num_tokens, self.key_channels])

  def project_output(self, context, index=0):
    """Output projection of layer `index`: (N, L, D) -> (N, L, C), no residual."""
    weights = self._layer_weights[index]
    dtype = context.dtype
    attended = tf.matmul(context, tf.reshape(tf.cast(weights['output_kernel'], dtype),
                                             [self.key_channels, self.channels]))
    return tf.nn.bias_add(attended, tf.cast(weights['output_bias'], dtype))

  def _attend(self, tokens, index, num_tokens_static, training, want_scores,
              key_mask=None):
    """Stacked layer `index` without its residual: (N, L, C) -> (N, L, C).

    key_mask: None or bool (N, 1, 1, L), the keys each image attends to.
    """
    query, key, value = self.split_heads(self.project_qkv(tokens, index))
    num_tokens = tf.shape(tokens)[1]

    seed = None
    if training and self.attention_dropout > 0:
      seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
    rate = self.attention_dropout

    def unchunked():
      return attention_ops.attention(query, key, value, rate, seed, key_mask)

    def chunked():
      return attention_ops.chunked_attention(query, key, value, self.chunk_size, rate,
                                             seed, training, key_mask)

    scores = None
    if want_scores:
      context, scores = attention_ops.attention(query, key, value, rate, seed, key_mask,
                                                return_probabilities=True)
    elif self.chunk_threshold is None:
      context = unchunked()
    elif num_tokens_static is not None:
      context = chunked() if num_tokens_static > self.chunk_threshold else unchunked()
    else:
      context = tf.cond(num_tokens > self.chunk_threshold, chunked, unchunked)
    return self.project_output(self.merge_heads(context), index), scores

  def load_bottleneck_weights(self,
                              reduce_kernel,
                              expand_kernel,
                              reduce_bias=None,
                              expand_bias=None,
                              reduce_batch_norm: Optional[
                                  batch_norm_folding.BatchNormParams] = None,
                              expand_batch_norm: Optional[
                                  batch_norm_folding.BatchNormParams] = None,
                              layer_index: int = 0):
    """Initialises one stacked layer from a ResNet bottleneck's 1x1 convolutions.

    The paper's initialisation: Q, K and V each get the "reduce" convolution
    (C -> C / bottleneck_ratio), the output projection the "expand"
    convolution (C / bottleneck_ratio -> C). A frozen batch norm after either
    convolution can be folded into its kernel and bias.

    Args:
      reduce_kernel: (1, 1, C, D) or (C, D).
      expand_kernel: (1, 1, D, C) or (D, C).
      reduce_bias: (D,) or None.
      expand_bias: (C,) or None.
      reduce_batch_norm: BatchNormParams over D channels, or None.
      expand_batch_norm: BatchNormParams over C channels, or None.
      layer_index: which stacked layer to set.

    Raises:
      ValueError: the layer is not built, layer_index is out of range, or a
        shape does not match (C, D) / (D, C).
    """
    if not self.built:
      raise ValueError('load_bottleneck_weights needs a built layer: call it on '
                       'an input (or call build) first')
    if not 0 <= layer_index < self.num_layers:
      raise ValueError(f'layer_index must be in [0, {self.num_layers}), '
                       f'got {layer_index}')
    weights = self._layer_weights[layer_index]
    reduce_kernel = batch_norm_folding.as_dense_kernel(reduce_kernel, 'reduce_kernel')
    expand_kernel = batch_norm_folding.as_dense_kernel(expand_kernel, 'expand_kernel')
    expected = {'reduce_kernel': ((self.channels, self.key_channels), reduce_kernel),
                'expand_kernel': ((self.key_channels, self.channels), expand_kernel)}
    for name, (shape, kernel) in expected.items():
      if kernel.shape != shape:
        raise ValueError(
            f'{name} must have shape {shape} (C={self.channels}, '
            f'C/bottleneck_ratio={self.key_channels}), got {kernel.shape}')
    for name, bias, size in (('reduce_bias', reduce_bias, self.key_channels),
                             ('expand_bias', expand_bias, self.channels)):
      if bias is not None and np.shape(bias) != (size,):
        raise ValueError(f'{name} must have shape ({size},), got {np.shape(bias)}')

    if reduce_batch_norm is not None:
      reduce_kernel, reduce_bias = batch_norm_folding.fold_batch_norm(
          reduce_kernel, reduce_bias, reduce_batch_norm)
    if expand_batch_norm is not None:
      expand_kernel, expand_bias = batch_norm_folding.fold_batch_norm(
          expand_kernel, expand_bias, expand_batch_norm)
    if reduce_bias is None:
      reduce_bias = np.zeros(self.key_channels)
    if expand_bias is None:
      expand_bias = np.zeros(self.channels)
    weights['qkv_kernel'].assign(np.tile(reduce_kernel, (1, 3)).reshape(
        weights['qkv_kernel'].shape))
    weights['qkv_bias'].assign(np.tile(np.asarray(reduce_bias, np.float64), 3).reshape(
        weights['qkv_bias'].shape))
    weights['output_kernel'].assign(expand_kernel.reshape(weights['output_kernel'].shape))
    weights['output_bias'].assign(np.asarray(expand_bias, np.float64))

  def compute_output_shape(self, input_shape):
    return tf.TensorShape(input_shape)

  def get_config(self):
    config = super().get_config()
    config.update({
        'num_heads': self.num_heads,
        'num_layers': self.num_layers,
        'bottleneck_ratio': self.bottleneck_ratio,
        'use_residual': self.use_residual,
        'attention_dropout': self.attention_dropout,
        'chunk_size': self.chunk_size,
        'chunk_threshold': self.chunk_threshold,
        'kernel_initializer': tf.keras.initializers.serialize(
            self.kernel_initializer),
        'output_kernel_initializer': tf.keras.initializers.serialize(
            self.output_kernel_initializer),
        'bias_initializer': tf.keras.initializers.serialize(self.bias_initializer),
        'kernel_regularizer': tf.keras.regularizers.serialize(self.kernel_regularizer)
                              if self.kernel_regularizer else None,
        'bias_regularizer': tf.keras.regularizers.serialize(self.bias_regularizer)
                            if self.bias_regularizer else None,
    })
    return config

