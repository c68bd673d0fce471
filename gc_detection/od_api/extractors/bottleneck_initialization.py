"""The paper's bottleneck initialisation, for the OD API's Keras ResNets.

The block's layers in the OD API's Keras ResNet (the same names as
tf.keras.applications) are `<block>_1_conv` / `<block>_1_bn` (reduce) and
`<block>_3_conv` / `<block>_3_bn` (expand). Their convolutions have no bias
(the OD API builds them with use_bias=False); their batch norms are frozen and
can be folded in.
"""
from gc_detection.layers import bottleneck_initialization


def _layer(backbone, name):
  try:
    return backbone.get_layer(name)
  except ValueError as error:
    raise ValueError(f'the backbone {backbone.name!r} has no layer {name!r} to '
                     'initialise the global-context module from') from error


def initialize_from_bottleneck(layer, backbone, block, fold_batch_norm):
  """Sets every block of a built GlobalContextAttention from a ResNet block.

  Args:
    layer: a built GlobalContextAttention on C channels.
    backbone: the Keras ResNet holding `block` (its weights already restored).
    block: the bottleneck block's layer prefix, e.g. 'conv4_block6'; its
      reduce kernel is (1, 1, C, C/4), its expand kernel (1, 1, C/4, C).
    fold_batch_norm: fold the block's frozen batch norms into the copies.
  """
  bottleneck_initialization.initialize_from_bottleneck(
      layer, _layer(backbone, f'{block}_1_conv'), _layer(backbone, f'{block}_3_conv'),
      reduce_batch_norm=_layer(backbone, f'{block}_1_bn') if fold_batch_norm else None,
      expand_batch_norm=_layer(backbone, f'{block}_3_bn') if fold_batch_norm else None)
