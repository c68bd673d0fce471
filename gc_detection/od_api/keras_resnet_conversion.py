r"""Turns keras.applications ResNet weights into an OD API classification checkpoint.

Why: every config in pipeline_configs/ starts from ImageNet with
`fine_tune_checkpoint_type: "classification"`. For that type the OD API's
`model_lib_v2.load_fine_tune_checkpoint` restores
`tf.train.Checkpoint(feature_extractor=model._feature_extractor.classification_backbone)`
and asserts that every variable of that backbone was in the checkpoint. The
backbone is the OD API's own Keras ResNet
(`object_detection.models.keras_models.resnet_v1.resnet_v1_{50,101,152}`):
`tf.keras.applications` ResNet built with overridden layers. The OD API
publishes no checkpoint in that layout, and a keras.applications model does not
restore into it: the object graphs and the weights differ. This tool builds
both models, copies the weights layer by layer by name, and writes
`tf.train.Checkpoint(feature_extractor=od_resnet)`.

The layer names are the same, but the OD ResNet is slim-style, so the copy
converts three things (each exactly: the converted network computes what the
keras one does, up to the max pool, below):

1. Its convolutions have no bias; keras' have one. Every keras convolution
   `..._conv` feeds the batch norm `..._bn`, and
   BN(conv(x) + b; mean m) = BN(conv(x); mean m - b), so the bias is folded
   into that batch norm's moving mean.
2. Its batch norms use epsilon 1e-5, keras' 1.001e-5: the difference is added
   to the moving variance, keeping variance + epsilon.
3. keras' ImageNet ResNets expect Caffe-style BGR input minus the BGR means
   (`resnet.preprocess_input`); the OD API's ResNet extractors feed RGB minus
   the same means. With --input_channel_order=bgr (the default) the input
   channels of conv1's kernel are reversed, so conv1 sees what it was trained on.

What stays different is the OD ResNet's architecture, not its weights: its
pool1 max-pools with SAME padding (pads bottom/right) where keras zero-pads
top/left; and the RetinaNet configs (`override_base_feature_extractor_hyperparams`)
build the backbone with ReLU6 and batch-norm epsilon 1e-3. The OD API's own
RetinaNet configs do the same from their ImageNet checkpoints.

One checkpoint serves both meta-architectures: Faster R-CNN restores it into
the full ResNet, SSD/RetinaNet into its `classification_backbone`, a
functional model over the same layers in the same order.

Usage:
  python -m gc_detection.cli.convert_keras_resnet --depth=50 \
      --output_prefix=checkpoints/resnet50_imagenet/ckpt \
      [--weights=imagenet|none|/path/to/notop_weights.h5] [--overwrite]

writes checkpoints/resnet50_imagenet/ckpt-0.{index,data-00000-of-00001}
(`ckpt-0`, the name the shipped configs expect). `--weights=imagenet` lets
keras download its `resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5`
(into ~/.keras/models); `none` gives random weights (tests); a path loads that
.h5 (a keras.applications ResNet of the same depth, include_top=False).
"""
from gc_detection import keras_resnet_checkpoints
from gc_detection.keras_resnet_checkpoints import DEPTHS
from gc_detection.keras_resnet_checkpoints import build_keras_resnet
from gc_detection.keras_resnet_checkpoints import checkpoint_files
from gc_detection.keras_resnet_checkpoints import save_atomically
FIRST_CONV = 'conv1_conv'
CHANNEL_ORDERS = ('bgr', 'rgb')


def check_arguments(depth, weights, input_channel_order='bgr'):
  """Raises ValueError / FileNotFoundError naming the bad flag and value."""
  keras_resnet_checkpoints.check_depth_and_weights(depth, weights)
  if input_channel_order not in CHANNEL_ORDERS:
    raise ValueError(f'--input_channel_order: must be bgr or rgb, got '
                     f'{input_channel_order!r}')


def build_od_resnet(depth):
  """The OD API's Keras ResNet as its Faster R-CNN extractor builds it.

  Same input as build_keras_resnet (RGB, see --input_channel_order) and the
  same C5 output; the weights are random until copied.
  """
  from object_detection.models.keras_models import resnet_v1  # pylint: disable=g-import-not-at-top
  constructor = getattr(resnet_v1, f'resnet_v1_{depth}')
  return constructor(batchnorm_training=False, conv_hyperparams=None,
                     classes=None, weights=None, include_top=False)


def _layers_with_weights(model):
  return {layer.name: layer for layer in model.layers if layer.weights}


def _is_conv(layer):
  return hasattr(layer, 'kernel') and hasattr(layer, 'use_bias')


def _is_batch_norm(layer):
  # The OD API's FreezableBatchNorm derives from the v1 Keras class, which is
  # not a tf.keras.layers.BatchNormalization.
  return hasattr(layer, 'moving_variance') and hasattr(layer, 'epsilon')


def _short_name(variable):
  """'conv1_bn/moving_mean:0' -> 'moving_mean'."""
  return variable.name.split('/')[-1].split(':')[0]


def converted_weights(source, target, input_channel_order='bgr'):
  """Computes the target's weights from the source's, matching layers by name.

  Args:
    source: a keras.applications ResNet (convolutions with bias).
    target: the OD API's ResNet of the same depth (no bias).
    input_channel_order: 'bgr' reverses the input channels of conv1's kernel,
      [7, 7, 3, 64].

  Returns:
    {layer name: {weight name ('kernel', 'gamma', 'moving_mean', ...): array
    of the target weight's shape}} for every target layer with weights.

  Raises:
    ValueError: naming the layer, when a layer with weights exists in one
      model only, has a kind the conversion does not know, or a shape differs.
  """
  sources, targets = _layers_with_weights(source), _layers_with_weights(target)
  for name in sorted(set(sources) ^ set(targets)):
    owner = 'keras.applications' if name in sources else 'OD API'
    raise ValueError(f'layer {name!r} has weights in the {owner} ResNet only; '
                     'the two models do not match')
  converted, folded_biases = {}, {}
  for name, layer in targets.items():  # convolutions first: they feed the BNs
    if _is_conv(layer) and _is_conv(sources[name]):
      kernel = sources[name].kernel.numpy()
      if name == FIRST_CONV and input_channel_order == 'bgr':
        kernel = kernel[:, :, ::-1, :]
      converted[name] = {'kernel': kernel}
      if sources[name].use_bias:
        if layer.use_bias:
          converted[name]['bias'] = sources[name].bias.numpy()
        else:
          folded_biases[_batch_norm_after(name, sources, targets)] = (
              sources[name].bias.numpy())
  for name, layer in targets.items():
    if _is_batch_norm(layer) and _is_batch_norm(sources[name]):
      bn = sources[name]
      variance = (bn.moving_variance.numpy() + bn.epsilon - layer.epsilon)
      converted[name] = {
          'gamma': bn.gamma.numpy(), 'beta': bn.beta.numpy(),
          'moving_mean': bn.moving_mean.numpy() - folded_biases.get(name, 0.0),
          'moving_variance': variance}
    elif name not in converted:
      raise ValueError(
          f'layer {name!r}: cannot convert a {type(sources[name]).__name__} '
          f'layer into a {type(layer).__name__} layer')
  for name, layer in targets.items():
    for variable in layer.weights:
      value = converted[name].get(_short_name(variable))
      if value is None or value.shape != tuple(variable.shape):
        got = 'nothing' if value is None else f'shape {value.shape}'
        raise ValueError(f'layer {name!r}: weight {variable.name} has shape '
                         f'{tuple(variable.shape)}, the conversion gives {got}')
  return converted


def _batch_norm_after(conv_name, sources, targets):
  """'conv2_block1_1_conv' -> 'conv2_block1_1_bn', checked in the keras graph."""
  bn_name = conv_name[:-len('_conv')] + '_bn'
  if (not conv_name.endswith('_conv') or bn_name not in targets
      or sources[bn_name].input is not sources[conv_name].output):
    raise ValueError(f'layer {conv_name!r} has a bias but no batch norm '
                     f'{bn_name!r} right after it to fold it into')
  return bn_name


def copy_weights(source, target, input_channel_order='bgr'):
  """Sets every weight of `target` from `source`; all or nothing."""
  converted = converted_weights(source, target, input_channel_order)
  for layer in target.layers:
    for variable in layer.weights:
      variable.assign(converted[layer.name][_short_name(variable)])


def convert(depth, weights, output_prefix, overwrite=False,
            input_channel_order='bgr'):
  """Converts ResNet-{depth} `weights`; returns the checkpoint path.

  Args:
    depth: 50, 101 or 152.
    weights: 'imagenet', 'none' / None (random), or the path of an .h5.
    output_prefix: e.g. 'checkpoints/resnet50_imagenet/ckpt'; the checkpoint
      is written to output_prefix + '-0'.
    overwrite: replace an existing checkpoint at that path.
    input_channel_order: 'bgr' (keras' ImageNet weights) or 'rgb'.
  """
  check_arguments(depth, weights, input_channel_order)
  path = f'{output_prefix}-0'
  keras_resnet_checkpoints.refuse_to_overwrite(path, overwrite)  # before any download
  source = build_keras_resnet(depth, weights)
  target = build_od_resnet(depth)
  copy_weights(source, target, input_channel_order)
  return save_atomically(target, path, overwrite)

