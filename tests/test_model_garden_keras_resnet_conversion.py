"""keras.applications ResNet weights into official.vision's ResNet (Model Garden).

Each converted layer must compute what keras' layer computes: checked on
random keras weights (with non-zero biases and batch-norm statistics) by
running keras' own layers and official.vision's on the same inputs: the stem
(conv1 + batch norm, on keras' Caffe-style input vs official.vision's
normalised RGB of the same pixels) and whole bottleneck blocks of stage 2
(stride 1 in both architectures, projection shortcut included).
"""
import numpy as np
import pytest
import tensorflow as tf

from official.vision.modeling.layers import nn_blocks

from conftest import run_python
from gc_detection.model_garden import backbone_initialization
from gc_detection.model_garden import keras_resnet_conversion as conversion
from gc_detection.model_garden import backbone_config
from official.vision.configs import common
from official.vision.modeling.backbones import factory


@pytest.fixture(scope='module')
def converted():
  source = tf.keras.applications.ResNet50(include_top=False, weights=None)
  rng = np.random.default_rng(0)
  for weight in source.weights:
    name = weight.name
    if 'moving_variance' in name:
      value = rng.uniform(0.2, 2.0, weight.shape)
    elif 'kernel' in name:
      value = rng.normal(0, np.sqrt(2.0 / np.prod(weight.shape[:-1])), weight.shape)
    else:  # biases, gamma, beta, moving_mean: away from their defaults
      value = rng.normal(1.0 if 'gamma' in name else 0.0, 0.3, weight.shape)
    weight.assign(value.astype(np.float32))
  target = conversion.build_model_garden_resnet(50)
  conversion.copy_weights(source, target)
  return source, target


def test_the_stem_computes_keras_conv1_on_official_vision_input(converted):
  source, target = converted
  pixels = np.random.default_rng(1).integers(0, 256, (1, 15, 15, 3)).astype(np.float64)
  caffe = pixels[..., ::-1] - conversion.CAFFE_MEAN_BGR
  normalised = (pixels - conversion.MEAN_RGB) / conversion.STDDEV_RGB
  keras_conv, keras_norm = source.get_layer('conv1_conv'), source.get_layer('conv1_bn')
  expected = keras_norm(tf.nn.conv2d(caffe.astype(np.float32), keras_conv.kernel, 2, 'VALID')
                        + keras_conv.bias, training=False)
  stem_conv = next(l for l in target.layers if isinstance(l, tf.keras.layers.Conv2D))
  stem_norm = next(l for l in target.layers
                   if isinstance(l, tf.keras.layers.BatchNormalization))
  actual = stem_norm(tf.nn.conv2d(normalised.astype(np.float32), stem_conv.kernel, 2,
                                  'VALID'), training=False)
  np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-3 * np.abs(expected).max())


@pytest.mark.parametrize('block', [1, 2])
def test_stage_2_blocks_compute_keras_blocks(converted, block):
  source, target = converted
  start = source.get_layer('pool1_pool' if block == 1 else f'conv2_block{block - 1}_out')
  keras_block = tf.keras.Model(start.output, source.get_layer(f'conv2_block{block}_out').output)
  inputs = np.random.default_rng(block).normal(0, 1, (2, 8, 8, start.output.shape[-1]))
  inputs = tf.constant(inputs, tf.float32)
  blocks = [l for l in target.layers if isinstance(l, nn_blocks.BottleneckBlock)]
  expected = keras_block(inputs, training=False).numpy()
  actual = blocks[block - 1](inputs, training=False).numpy()
  np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_the_command_writes_a_checkpoint_the_gc_backbone_restores(tmp_path):
  prefix = tmp_path / 'mg_resnet50' / 'ckpt'
  result = run_python(['-m', 'gc_detection.cli.convert_keras_resnet', '--target=model_garden',
                       '--depth=50', '--weights=none', f'--output_prefix={prefix}'])
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'task.init_checkpoint_modules: backbone' in result.stdout
  config = backbone_config.Backbone(type='resnet_gc')
  backbone = factory.build_backbone(tf.keras.layers.InputSpec(shape=[None, 64, 64, 3]),
                                    config, common.NormActivation())
  assert backbone_initialization.restore_backbone(backbone, f'{prefix}-0') is False
  result = run_python(['-m', 'gc_detection.cli.convert_keras_resnet', '--target=model_garden',
                       '--depth=50', '--weights=none', f'--output_prefix={prefix}'])
  assert result.returncode == 2 and 'pass --overwrite' in result.stderr
