"""The paper's initialisation of the module from a pretrained ResNet bottleneck.

Section 3.4: a bottleneck block's 1x1 "reduce" convolution (C -> C/4) already
maps a feature map to a useful lower-dimensional space, and its 1x1 "expand"
convolution (C/4 -> C) maps back. Starting Q, K and V from the reduce
convolution and the output projection from the expand convolution gives the
attention sensible projections from the first step instead of random ones.

This module takes the block's Keras layers; each framework adapter finds them
in its own ResNet (by layer name in the OD API's, by block in Model Garden's).
"""
from gc_detection.layers import batch_norm_folding


def batch_norm_params(layer):
  """BatchNormParams of a Keras BatchNormalization layer (its moving statistics)."""
  channels = layer.moving_mean.shape[0]
  return batch_norm_folding.BatchNormParams(
      gamma=layer.gamma.numpy() if layer.gamma is not None else [1.0] * channels,
      beta=layer.beta.numpy() if layer.beta is not None else [0.0] * channels,
      mean=layer.moving_mean.numpy(),
      variance=layer.moving_variance.numpy(),
      epsilon=layer.epsilon)


def _kernel_and_bias(convolution):
  """(kernel (1, 1, in, out), bias (out,) or None) of a 1x1 Conv2D layer."""
  bias = convolution.bias.numpy() if getattr(convolution, 'bias', None) is not None else None
  return convolution.kernel.numpy(), bias


def initialize_from_bottleneck(layer, reduce_convolution, expand_convolution,
                               reduce_batch_norm=None, expand_batch_norm=None):
  """Sets every stacked layer of a built GlobalContextAttention from one block.

  Args:
    layer: a built GlobalContextAttention on C channels.
    reduce_convolution: the block's 1x1 Conv2D, kernel (1, 1, C, C/4).
    expand_convolution: its 1x1 Conv2D, kernel (1, 1, C/4, C).
    reduce_batch_norm, expand_batch_norm: the BatchNormalization layers right
      after them, folded into the copies; None: not folded.

  Every stacked attention layer gets the same copy.
  """
  reduce_kernel, reduce_bias = _kernel_and_bias(reduce_convolution)
  expand_kernel, expand_bias = _kernel_and_bias(expand_convolution)
  reduce_params = batch_norm_params(reduce_batch_norm) if reduce_batch_norm else None
  expand_params = batch_norm_params(expand_batch_norm) if expand_batch_norm else None
  for layer_index in range(layer.num_layers):
    layer.load_bottleneck_weights(
        reduce_kernel, expand_kernel, reduce_bias=reduce_bias,
        expand_bias=expand_bias, reduce_batch_norm=reduce_params,
        expand_batch_norm=expand_params, layer_index=layer_index)
