"""The paper's initialisation of the module from a pretrained ResNet bottleneck.

Section 3.4: a bottleneck block's 1x1 "reduce" convolution (C -> C/4) already
maps a feature map to a useful lower-dimensional space, and its 1x1 "expand"
convolution (C/4 -> C) maps back. Starting Q, K and V from the reduce
convolution and the output projection from the expand convolution gives the
attention sensible projections from the first step instead of random ones.

The block's layers in the OD API's Keras ResNet (the same names as
tf.keras.applications) are `<block>_1_conv` / `<block>_1_bn` (reduce) and
`<block>_3_conv` / `<block>_3_bn` (expand). Their convolutions have no bias
(the OD API builds them with use_bias=False); their batch norms are frozen and
can be folded in.
"""
from gc_detection.layers import batch_norm_folding


def _batch_norm_params(layer):
  """BatchNormParams of a Keras BatchNormalization layer (frozen statistics)."""
  channels = layer.moving_mean.shape[0]
  ones = [1.0] * channels
  zeros = [0.0] * channels
  return batch_norm_folding.BatchNormParams(
      gamma=layer.gamma.numpy() if layer.gamma is not None else ones,
      beta=layer.beta.numpy() if layer.beta is not None else zeros,
      mean=layer.moving_mean.numpy(),
      variance=layer.moving_variance.numpy(),
      epsilon=layer.epsilon)


def _convolution(backbone, name):
  """(kernel (1, 1, in, out), bias (out,) or None) of a 1x1 convolution layer."""
  try:
    layer = backbone.get_layer(name)
  except ValueError as error:
    raise ValueError(f'the backbone {backbone.name!r} has no layer {name!r} to '
                     'initialise the global-context module from') from error
  bias = layer.bias.numpy() if getattr(layer, 'bias', None) is not None else None
  return layer.kernel.numpy(), bias


def initialize_from_bottleneck(layer, backbone, block, fold_batch_norm):
  """Sets every block of a built GlobalContextAttention from a ResNet block.

  Args:
    layer: a built GlobalContextAttention on C channels.
    backbone: the Keras ResNet holding `block` (its weights already restored).
    block: the bottleneck block's layer prefix, e.g. 'conv4_block6'; its
      reduce kernel is (1, 1, C, C/4), its expand kernel (1, 1, C/4, C).
    fold_batch_norm: fold the block's frozen batch norms into the copies.

  Every stacked attention layer gets the same copy.
  """
  reduce_kernel, reduce_bias = _convolution(backbone, f'{block}_1_conv')
  expand_kernel, expand_bias = _convolution(backbone, f'{block}_3_conv')
  reduce_batch_norm = expand_batch_norm = None
  if fold_batch_norm:
    reduce_batch_norm = _batch_norm_params(backbone.get_layer(f'{block}_1_bn'))
    expand_batch_norm = _batch_norm_params(backbone.get_layer(f'{block}_3_bn'))
  for layer_index in range(layer.num_layers):
    layer.load_bottleneck_weights(
        reduce_kernel, expand_kernel, reduce_bias=reduce_bias,
        expand_bias=expand_bias, reduce_batch_norm=reduce_batch_norm,
        expand_batch_norm=expand_batch_norm, layer_index=layer_index)

