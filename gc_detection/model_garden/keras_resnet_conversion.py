r"""keras.applications ImageNet ResNets as official.vision ResNet backbone checkpoints.

Why: Model Garden publishes an ImageNet checkpoint of its plain ResNet-50
(the R-50 experiments' init_checkpoint) but none of a plain ResNet-101 or -152.
This converts tf.keras.applications' ResNet{50,101,152} ImageNet weights into
official.vision's `resnet.ResNet` and writes `tf.train.Checkpoint(backbone=...)`,
which `task.init_checkpoint` with `init_checkpoint_modules: backbone` reads (into
the stock or the resnet_gc backbone).

The mapping: keras' `conv1_conv`/`conv1_bn` -> the stem's convolution and
batch norm; `conv<s>_block<b>_<i>_conv`/`_bn` -> the b-th BottleneckBlock of
stage s, i = 1, 2, 3 its three convolutions, i = 0 the projection shortcut. What
is converted exactly (each converted layer computes what the keras one does):

1. keras' convolutions have a bias, official.vision's none: the bias is folded
   into the moving mean of the batch norm after it.
2. keras' batch norms use epsilon 1.001e-5, official.vision's the experiment's
   `norm_epsilon` (1e-3 by default): gamma is rescaled by
   sqrt(variance + new epsilon) / sqrt(variance + old epsilon), exact at
   inference for any variance.
3. keras' ImageNet ResNets read Caffe-style input (BGR minus the BGR means);
   official.vision feeds RGB minus the ImageNet RGB means, divided by their
   deviations. conv1's input channels are reversed and scaled by the
   deviations, and the difference of the means goes into conv1's folded bias.

What stays different is the architecture, not the weights: official.vision's
ResNet strides in the 3x3 convolution of a stage's first block (ResNet v1.5),
keras' in its first 1x1 convolution (v1), and its stem pads 'same' where keras
pads 3 px explicitly (a one-pixel shift). The converted backbone starts near
the ImageNet features, not on them; fine-tuning closes the gap (the shift is
what Model Garden's own ImageNet ResNets avoid: prefer them when they exist).

  python -m gc_detection.cli.convert_keras_resnet --target=model_garden --depth=101 \
      --output_prefix=checkpoints/mg_resnet101_imagenet/ckpt
"""
import numpy as np
import tensorflow as tf

from official.vision.modeling.backbones import resnet
from official.vision.modeling.layers import nn_blocks

from gc_detection import keras_resnet_checkpoints

# official.vision's input normalisation (preprocess_ops.MEAN_RGB / STDDEV_RGB)
# and keras' Caffe-style one (resnet.preprocess_input: BGR means, no scaling).
MEAN_RGB = np.array([0.485, 0.456, 0.406]) * 255.0
STDDEV_RGB = np.array([0.229, 0.224, 0.225]) * 255.0
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68])
DEFAULT_NORM_EPSILON = 0.001


def build_model_garden_resnet(depth, norm_epsilon=DEFAULT_NORM_EPSILON):
  """official.vision's ResNet-{depth} (v0 stem), built, random weights."""
  model = resnet.ResNet(depth, input_specs=tf.keras.layers.InputSpec(
      shape=[None, None, None, 3]), norm_epsilon=norm_epsilon)
  model(tf.zeros([1, 64, 64, 3]))
  return model


def _batch_norm(source, target, conv_bias):
  """target's (gamma, beta, mean, variance) computing source(x + conv_bias)."""
  variance = source.moving_variance.numpy()
  scale = np.sqrt(variance + target.epsilon) / np.sqrt(variance + source.epsilon)
  return [source.gamma.numpy() * scale, source.beta.numpy(),
          source.moving_mean.numpy() - conv_bias, variance]


def _copy_conv_and_norm(source_conv, source_norm, target_conv, target_norm,
                        kernel=None, extra_bias=0.0):
  """Sets a (conv, batch norm) pair of official.vision from keras' pair."""
  kernel = source_conv.kernel.numpy() if kernel is None else kernel
  bias = source_conv.bias.numpy() if source_conv.use_bias else 0.0
  target_conv.set_weights([kernel])
  target_norm.set_weights(_batch_norm(source_norm, target_norm, bias + extra_bias))


def stem_kernel_and_bias(kernel):
  """conv1's (7, 7, 3, 64) kernel for official.vision's input, and its bias shift.

  keras computes K * (x_bgr - caffe_mean); official.vision feeds
  z = (x_rgb - mean_rgb) / stddev_rgb. With x_bgr = reverse(stddev * z + mean_rgb):
  K * (x_bgr - caffe_mean) = K' * z + sum(K * (reverse(mean_rgb) - caffe_mean)),
  K' = reverse_in(K) * stddev (per input channel).
  """
  rgb_kernel = kernel[:, :, ::-1, :] * STDDEV_RGB[None, None, :, None]
  shift = np.einsum('hwco,c->o', kernel, MEAN_RGB[::-1] - CAFFE_MEAN_BGR)
  return rgb_kernel.astype(np.float32), shift


def copy_weights(source, target):
  """Sets every weight of the official.vision ResNet `target` from keras' `source`.

  Raises:
    ValueError: the depths or layer counts do not match (naming the layer).
  """
  stem_conv = next(l for l in target.layers if isinstance(l, tf.keras.layers.Conv2D))
  stem_norm = next(l for l in target.layers
                   if isinstance(l, tf.keras.layers.BatchNormalization))
  kernel, shift = stem_kernel_and_bias(source.get_layer('conv1_conv').kernel.numpy())
  _copy_conv_and_norm(source.get_layer('conv1_conv'), source.get_layer('conv1_bn'),
                      stem_conv, stem_norm, kernel=kernel, extra_bias=shift)
  blocks = [l for l in target.layers if isinstance(l, nn_blocks.BottleneckBlock)]
  repeats = [spec[2] for spec in resnet.RESNET_SPECS[target._model_id]]  # pylint: disable=protected-access
  if len(blocks) != sum(repeats):
    raise ValueError(f'the official.vision ResNet has {len(blocks)} blocks, '
                     f'expected {sum(repeats)}')
  index = 0
  for stage, count in enumerate(repeats, start=2):
    for number in range(1, count + 1):
      block, name = blocks[index], f'conv{stage}_block{number}'
      index += 1
      pairs = [(1, block._conv1, block._norm1), (2, block._conv2, block._norm2),  # pylint: disable=protected-access
               (3, block._conv3, block._norm3)]  # pylint: disable=protected-access
      if number == 1:
        pairs.append((0, block._shortcut, block._norm0))  # pylint: disable=protected-access
      for part, conv, norm in pairs:
        try:
          source_conv = source.get_layer(f'{name}_{part}_conv')
          source_norm = source.get_layer(f'{name}_{part}_bn')
        except ValueError as error:
          raise ValueError(f'keras ResNet has no {name}_{part}_conv/_bn: the depths '
                           'do not match') from error
        _copy_conv_and_norm(source_conv, source_norm, conv, norm)


def convert(depth, weights, output_prefix, overwrite=False,
            norm_epsilon=DEFAULT_NORM_EPSILON):
  """Converts keras' ResNet-{depth} `weights`; returns the checkpoint path
  (output_prefix + '-0', holding tf.train.Checkpoint(backbone=...))."""
  keras_resnet_checkpoints.check_depth_and_weights(depth, weights)
  path = f'{output_prefix}-0'
  keras_resnet_checkpoints.refuse_to_overwrite(path, overwrite)  # before any download
  source = keras_resnet_checkpoints.build_keras_resnet(depth, weights)
  target = build_model_garden_resnet(depth, norm_epsilon)
  copy_weights(source, target)
  return keras_resnet_checkpoints.save_atomically(target, path, overwrite, key='backbone')
