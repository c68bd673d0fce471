"""Small models and training configs shared by the recipe tests.

The reference for the bottleneck initialisation lives here too: the source
block's kernels and frozen batch norms, read by layer name from the model that
wrote the fine-tune checkpoint and folded in float64 NumPy.
"""
import os

import numpy as np
from object_detection.builders import model_builder
from object_detection.utils import config_util
import tensorflow as tf

from conftest import REPO_ROOT
from gc_detection.data import shapes
from gc_detection import atomic_files
from gc_detection.od_api.config_edits import set_square_input
from gc_detection.data import tf_example

CONFIG_DIR = os.path.join(REPO_ROOT, 'pipeline_configs')
FRCNN_GC_R50 = 'faster_rcnn_resnet50_v1_gc_600x1024_coco.config'
FRCNN_R50 = 'faster_rcnn_resnet50_v1_600x1024_coco.config'


def configs(config_name, size, tmp_path, block=None):
  """A shipped config at `size` px; `block` replaces the GC block's contents."""
  text = open(os.path.join(CONFIG_DIR, config_name)).read()
  if block is not None:
    start = text.index('[gc_detection.protos.global_context]')
    text = text[:start] + f'[gc_detection.protos.global_context] {{ {block} }}\n'
  path = tmp_path / f'{len(os.listdir(tmp_path))}.config'
  path.write_text(text)
  result = config_util.get_configs_from_pipeline_file(str(path))
  set_square_input(result['model'], size)
  return result


def built_model(model_configs, size):
  """The model of `model_configs`, run once on a (1, size, size, 3) image."""
  model = model_builder.build(model_configs['model'], is_training=False)
  image = tf.constant(np.random.default_rng(0).uniform(
      0, 255, (1, size, size, 3)).astype(np.float32))
  model.predict(*model.preprocess(image))
  return model


def randomise_bottleneck_block(backbone, block, seed):
  """Gives the block's batch norms statistics far from the identity."""
  rng = np.random.default_rng(seed)
  for part in ('1', '3'):
    bn = backbone.get_layer(f'{block}_{part}_bn')
    channels = bn.gamma.shape[0]
    bn.gamma.assign(rng.uniform(0.5, 1.5, channels))
    bn.beta.assign(rng.normal(0, 0.3, channels))
    bn.moving_mean.assign(rng.normal(0, 0.3, channels))
    bn.moving_variance.assign(rng.uniform(0.5, 2.0, channels))


def expected_bottleneck_copy(backbone, block, fold):
  """(reduce kernel (C, D), reduce bias (D,), expand kernel (D, C), bias (C,)).

  What Q/K/V and the output projection should hold, in float64.
  """
  def part(name):
    kernel = backbone.get_layer(f'{block}_{name}_conv').kernel.numpy().astype(np.float64)[0, 0]
    bias = np.zeros(kernel.shape[1])
    if fold:
      bn = backbone.get_layer(f'{block}_{name}_bn')
      scale = bn.gamma.numpy() / np.sqrt(bn.moving_variance.numpy().astype(np.float64) +
                                         bn.epsilon)
      kernel, bias = kernel * scale, bn.beta.numpy() - bn.moving_mean.numpy() * scale
    return kernel, bias
  return part('1') + part('3')


def assert_bottleneck_copy(blocks, expected):
  """Checks GC weights against expected_bottleneck_copy.

  Args:
    blocks: per attention block, a dict of arrays qkv_kernel (C, 3, h, d),
      qkv_bias (3, h, d), output_kernel (h, d, C), output_bias (C,).
    expected: expected_bottleneck_copy(...).
  """
  reduce_kernel, reduce_bias, expand_kernel, expand_bias = expected
  channels, key_channels = reduce_kernel.shape
  for block in blocks:
    qkv = block['qkv_kernel'].reshape(channels, 3, key_channels)
    qkv_bias = block['qkv_bias'].reshape(3, key_channels)
    for index in range(3):  # Q, K and V are the same copy
      np.testing.assert_allclose(qkv[:, index], reduce_kernel, rtol=1e-5, atol=1e-6)
      np.testing.assert_allclose(qkv_bias[index], reduce_bias, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(block['output_kernel'].reshape(key_channels, channels),
                               expand_kernel, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(block['output_bias'], expand_bias, rtol=1e-5, atol=1e-6)


def faster_rcnn_gc_training_config(tmp_path, fine_tune_checkpoint, extra_block='',
                                   learning_rate=0.0):
  """The GC R-50 config on generated 64 px data; returns its path.

  Adam at a constant `learning_rate`, a detection fine_tune_checkpoint, and
  `extra_block` appended inside the GC block.
  """
  record = str(tmp_path / 'train.tfrecord')
  tf_example.write_tfrecord(record, shapes.generate(seed=3, count=4, height=64,
                                                    width=64, max_boxes=2))
  label_map = str(tmp_path / 'label_map.pbtxt')
  atomic_files.write_text(label_map,
                                   tf_example.label_map_text(shapes.SHAPE_COLOURS))
  block = ('num_heads: 4 num_layers: 1 bottleneck_ratio: 4 initialization: BOTTLENECK '
           + extra_block)
  result = configs(FRCNN_GC_R50, 64, tmp_path, block)
  result = config_util.merge_external_params_with_configs(result, kwargs_dict={
      'batch_size': 1, 'num_classes': len(shapes.SHAPE_COLOURS),
      'train_input_path': record, 'eval_input_path': record,
      'label_map_path': label_map})
  train_config = result['train_config']
  train_config.ClearField('data_augmentation_options')
  train_config.fine_tune_checkpoint = fine_tune_checkpoint
  train_config.fine_tune_checkpoint_type = 'detection'
  adam = train_config.optimizer.adam_optimizer
  adam.learning_rate.constant_learning_rate.learning_rate = learning_rate
  frcnn = result['model'].faster_rcnn
  # Few, small crops: the box classifier on each crop dominates the step time.
  frcnn.first_stage_max_proposals, frcnn.second_stage_batch_size = 8, 4
  frcnn.initial_crop_size = 6
  config_util.save_pipeline_config(
      config_util.create_pipeline_proto_from_configs(result), str(tmp_path))
  return str(tmp_path / 'pipeline.config')
