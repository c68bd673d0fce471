"""ignore_padding in Model Garden: the resnet_gc module attends within each
image's true size in the task's train_step and validation_step.

Images of two aspect ratios go through the stock parser, which pads them to
the model's square input and records their scaled size in image_info; the
module's input is recorded inside the step, and the reference is the paper's
block in float64 on each image's valid cells alone (attention_reference).
"""
import numpy as np
import pytest
import tensorflow as tf

from official.core import exp_factory
from official.core import task_factory
from official.vision.dataloaders import tfexample_utils

import attention_reference as reference
from gc_detection.layers import true_image_sizes
from gc_detection.model_garden import registry  # pylint: disable=unused-import

SIZE = 128
# Float32 model vs float64 reference, relative to the largest output (the
# random backbone's C5 makes large scores, and the softmax amplifies float32
# rounding); attention over the whole padded map is off by far more.
REFERENCE_TOLERANCE = 1e-3


@pytest.fixture(scope='module')
def records(tmp_path_factory):
  """A wide (96 x 128) and a tall (128 x 48) image, two boxes each."""
  path = str(tmp_path_factory.mktemp('padding') / 'train.tfrecord')
  tfexample_utils.dump_to_tfrecord(path, [
      tfexample_utils.create_detection_test_example(96, 128, 3, 2),
      tfexample_utils.create_detection_test_example(128, 48, 3, 2)])
  return path


def _task(experiment, records, ignore_padding=True):
  config = exp_factory.get_exp_config(experiment)
  config.override({'task': {
      'model': {'input_size': [SIZE, SIZE, 3], 'num_classes': 3,
                'norm_activation': {'use_sync_bn': False},
                'backbone': {'resnet_gc': {'global_context': {
                    'initialization': 'glorot', 'ignore_padding': ignore_padding}}}},
      'train_data': {'input_path': records, 'global_batch_size': 2,
                     'shuffle_buffer_size': 1,
                     'parser': {'aug_rand_hflip': False, 'aug_scale_min': 1.0,
                                'aug_scale_max': 1.0}},
      'annotation_file': None}}, is_strict=False)
  return task_factory.get_task(config.task), config


def _valid_cells(image_info, stride):
  """Cells of each image's own pixels: ceil(original size x scale / stride)."""
  image_info = np.asarray(image_info, np.float64)
  assert np.all(image_info[:, 3] == 0)  # no crop without scale jitter
  return np.ceil(np.round(image_info[:, 0] * image_info[:, 2]) / stride).astype(int)


def _assert_attends_within(layer, module_input, module_output, valid):
  expected, _ = reference.global_context_on_valid_regions(
      module_input, valid, reference.blocks_of(layer), layer.num_heads)
  mask = np.zeros(module_input.shape[:3], bool)
  for index, (rows, columns) in enumerate(valid):
    mask[index, :rows, :columns] = True
  assert 0 < mask.sum() < mask.size
  scale = np.abs(expected[mask]).max()
  assert np.abs(module_output - expected)[mask].max() <= REFERENCE_TOLERANCE * scale
  np.testing.assert_array_equal(module_output[~mask], module_input[~mask])
  whole_map, _ = reference.global_context(module_input, reference.blocks_of(layer),
                                          layer.num_heads)
  assert np.abs(whole_map - expected)[mask].max() > 10 * REFERENCE_TOLERANCE * scale


def test_the_train_step_publishes_image_info(records):
  task, config = _task('retinanet_resnet50_fpn_gc_coco', records)
  model = task.build_model()
  layer = model.backbone.global_context
  assert isinstance(layer, true_image_sizes.TrueSizeGlobalContextAttention)
  features, labels = next(iter(task.build_inputs(config.task.train_data)))
  calls = reference.recording_calls(layer)
  task.train_step((features, labels), model, tf.keras.optimizers.SGD(0.0),
                  metrics=task.build_metrics())
  (module_input, module_output), = calls
  _assert_attends_within(layer, module_input, module_output,
                         _valid_cells(labels['image_info'], layer.stride))


def test_the_validation_step_publishes_image_info(records):
  task, config = _task('maskrcnn_resnet50_fpn_gc_coco', records)
  config.task.validation_data.override({
      'input_path': records, 'global_batch_size': 2, 'is_training': False})
  config.task.use_coco_metrics = False  # the step's outputs are not scored here
  task.build_metrics(training=False)
  model = task.build_model()
  layer = model.backbone.global_context
  features, labels = next(iter(task.build_inputs(config.task.validation_data)))
  calls = reference.recording_calls(layer)
  task.validation_step((features, labels), model)
  (module_input, module_output), = calls
  _assert_attends_within(layer, module_input, module_output,
                         _valid_cells(labels['image_info'], layer.stride))


def test_ignore_padding_false_attends_to_the_whole_map(records):
  task, config = _task('retinanet_resnet50_fpn_gc_coco', records, ignore_padding=False)
  model = task.build_model()
  layer = model.backbone.global_context
  assert not isinstance(layer, true_image_sizes.TrueSizeGlobalContextAttention)
  features, labels = next(iter(task.build_inputs(config.task.train_data)))
  calls = reference.recording_calls(layer)
  task.train_step((features, labels), model, tf.keras.optimizers.SGD(0.0),
                  metrics=task.build_metrics())
  (module_input, module_output), = calls
  expected, _ = reference.global_context(module_input, reference.blocks_of(layer),
                                         layer.num_heads)
  assert (np.abs(module_output - expected).max()
          <= REFERENCE_TOLERANCE * np.abs(expected).max())
