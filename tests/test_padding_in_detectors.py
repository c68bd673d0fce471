"""ignore_padding inside the OD API's Faster R-CNN and SSD: the module sees each
image's true shape on the predict, trainer and exporter paths.

The module's input is taken from a padded run of the model (the stock
backbone's own map of the padded batch); the reference is the paper's block
in float64 on each image's valid cells alone (attention_reference), with
valid cells = ceil(true shape / the module's stride).
"""
import numpy as np
from object_detection import exporter_lib_v2
from object_detection import model_lib
from object_detection import model_lib_v2
from object_detection.builders import model_builder
from object_detection.core import standard_fields as fields
import pytest
import tensorflow as tf

import attention_reference as reference
from conftest import serve_without_gc_detection
import tiny_configs
from gc_detection.layers import true_image_sizes

CONFIGS = {'faster_rcnn': tiny_configs.FRCNN_GC_R50,
           'ssd': 'ssd_resnet50_v1_fpn_gc_600x1024_coco.config'}
SIZE = {'faster_rcnn': 96, 'ssd': 160}
GC_BLOCK = 'initialization: GLOROT'  # a random output projection: the module acts
# Float32 model vs float64 reference, relative to the largest output: the
# random backbone's C4/C5 values reach several hundred, so the scores are
# large and the softmax amplifies float32 rounding. Attention over the whole
# map instead of the valid cells is off by more than 1e-2.
REFERENCE_TOLERANCE = 1e-3


def _configs(meta_architecture, tmp_path, block=GC_BLOCK):
  """The shipped 600x1024 config (keep_aspect_ratio_resizer, padded to a
  square), at SIZE px."""
  return tiny_configs.configs(CONFIGS[meta_architecture], SIZE[meta_architecture],
                              tmp_path, block=block)


def _padded_batch(meta_architecture, seed=0):
  """(images (2, S, S, 3), true shapes (2, 3)): a wide and a tall image."""
  size = SIZE[meta_architecture]
  images = np.random.default_rng(seed).uniform(0, 255, (2, size, size, 3))
  shapes = np.array([[size * 2 // 3, size, 3], [size, size * 5 // 12, 3]], np.int32)
  return images.astype(np.float32), shapes


def _assert_module_ignored_padding(layer, module_input, module_output, true_shapes):
  module_input = np.asarray(module_input, np.float64)
  stride = layer.stride
  valid = -(-np.asarray(true_shapes)[:, :2] // stride)
  expected, _ = reference.global_context_on_valid_regions(
      module_input, valid, reference.blocks_of(layer), layer.num_heads)
  mask = np.zeros(module_input.shape[:3], bool)
  for index, (rows, columns) in enumerate(valid):
    mask[index, :rows, :columns] = True
  assert 0 < mask.sum() < mask.size  # both images are padded at this stride
  actual = np.asarray(module_output, np.float64)
  assert (np.abs(actual - expected)[mask].max()
          <= REFERENCE_TOLERANCE * np.abs(expected[mask]).max())
  np.testing.assert_array_equal(actual[~mask], module_input[~mask])
  # Whatever the padding holds, in float32: the valid outputs stay the same.
  refilled = np.random.default_rng(7).normal(
      scale=np.abs(module_input).max(), size=module_input.shape)
  refilled[mask] = module_input[mask]
  again = layer(tf.constant(refilled, tf.float32), valid_shape=valid).numpy()
  np.testing.assert_allclose(again[mask], actual[mask], atol=1e-5 * np.abs(actual).max(),
                             rtol=1e-5)
  # The whole-map attention would have given something else.
  whole_map, _ = reference.global_context(module_input, reference.blocks_of(layer),
                                          layer.num_heads)
  assert np.abs(whole_map - expected)[mask].max() > 1e-2 * np.abs(expected[mask]).max()


@pytest.mark.parametrize('meta_architecture', ['faster_rcnn', 'ssd'])
def test_predict_attends_within_each_images_true_shape(meta_architecture, tmp_path):
  model = model_builder.build(_configs(meta_architecture, tmp_path)['model'],
                              is_training=False)
  images, shapes = _padded_batch(meta_architecture)
  preprocessed, _ = model.preprocess(tf.constant(images))
  model.predict(preprocessed, tf.constant(shapes))  # builds the layers
  extractor = model.feature_extractor
  layer = extractor.global_context
  assert isinstance(layer, true_image_sizes.TrueSizeGlobalContextAttention)
  calls = reference.recording_calls(layer)
  model.predict(preprocessed, tf.constant(shapes))
  (module_input, module_output), = calls
  np.testing.assert_allclose(module_input,
                             extractor.global_context_input(preprocessed).numpy(),
                             atol=1e-4, rtol=1e-5)
  _assert_module_ignored_padding(layer, module_input, module_output, shapes)


@pytest.mark.parametrize('meta_architecture', ['faster_rcnn', 'ssd'])
def test_ignore_padding_false_attends_to_the_whole_map(meta_architecture, tmp_path):
  model = model_builder.build(
      _configs(meta_architecture, tmp_path, GC_BLOCK + ' ignore_padding: false')['model'],
      is_training=False)
  images, shapes = _padded_batch(meta_architecture)
  preprocessed, _ = model.preprocess(tf.constant(images))
  model.predict(preprocessed, tf.constant(shapes))
  layer = model.feature_extractor.global_context
  assert not isinstance(layer, true_image_sizes.TrueSizeGlobalContextAttention)
  calls = reference.recording_calls(layer)
  model.predict(preprocessed, tf.constant(shapes))
  (module_input, module_output), = calls
  expected, _ = reference.global_context(module_input, reference.blocks_of(layer),
                                         layer.num_heads)
  assert (np.abs(module_output - expected).max()
          <= REFERENCE_TOLERANCE * np.abs(expected).max())


def test_the_trainers_step_function_passes_true_shapes(tmp_path):
  """model_lib_v2's loss-and-predictions function (the trainer's and the
  evaluator's), traced as the trainer traces it."""
  configs = _configs('faster_rcnn', tmp_path)
  model = model_builder.build(configs['model'], is_training=True)
  images, shapes = _padded_batch('faster_rcnn')
  preprocessed, _ = model.preprocess(tf.constant(images))
  features = {fields.InputDataFields.image: preprocessed,
              fields.InputDataFields.true_image_shape: tf.constant(shapes)}
  labels = model_lib.unstack_batch({
      fields.InputDataFields.num_groundtruth_boxes: tf.constant([1, 1]),
      fields.InputDataFields.groundtruth_boxes: tf.constant([[[0.1, 0.1, 0.5, 0.5]]] * 2),
      fields.InputDataFields.groundtruth_classes: tf.one_hot([[0], [0]], 90),
      fields.InputDataFields.groundtruth_weights: tf.ones([2, 1]),
  }, unpad_groundtruth_tensors=True)

  @tf.function
  def step(features, labels):
    _, predictions = model_lib_v2._compute_losses_and_predictions_dicts(  # pylint: disable=protected-access
        model, features, labels)
    return predictions['rpn_features_to_crop'][0]

  refined = step(features, labels).numpy()
  module_input = model.feature_extractor.global_context_input(preprocessed)
  _assert_module_ignored_padding(model.feature_extractor.global_context,
                                 module_input.numpy(), refined, shapes)


def test_the_stock_exporters_saved_model_ignores_padding(tmp_path):
  """A wide photo, resized into a padded square by the exporter's own
  preprocess: the SavedModel (served without gc_detection) gives what the
  in-process model gives, and not what the same weights give with
  ignore_padding false."""
  tf.keras.utils.set_random_seed(4)
  configs = _configs('faster_rcnn', tmp_path)
  model = model_builder.build(configs['model'], is_training=False)
  photo = np.random.default_rng(4).integers(0, 256, (1, 48, 72, 3)).astype(np.uint8)
  in_process = model(tf.constant(photo, tf.float32))
  checkpoint_dir = tmp_path / 'checkpoint'
  tf.train.Checkpoint(model=model).save(str(checkpoint_dir / 'ckpt'))
  pipeline = tiny_configs.config_util.create_pipeline_proto_from_configs(configs)
  export_dir = tmp_path / 'exported'
  exporter_lib_v2.export_inference_graph('image_tensor', pipeline, str(checkpoint_dir),
                                         str(export_dir))
  served = serve_without_gc_detection(export_dir / 'saved_model', photo, tmp_path)
  for name in ('raw_detection_scores', 'raw_detection_boxes'):
    np.testing.assert_allclose(served[name], in_process[name].numpy(), atol=1e-4,
                               rtol=1e-4)
  unaware = model_builder.build(
      _configs('faster_rcnn', tmp_path, GC_BLOCK + ' ignore_padding: false')['model'],
      is_training=False)
  unaware(tf.constant(photo, tf.float32))
  tf.train.Checkpoint(model=unaware).restore(
      tf.train.latest_checkpoint(str(checkpoint_dir))).assert_existing_objects_matched()
  whole_map = unaware(tf.constant(photo, tf.float32))
  # Random heads saturate many scores; the boxes move with the features too.
  assert max(np.abs(whole_map[name].numpy() - served[name]).max()
             for name in ('raw_detection_scores', 'raw_detection_boxes')) > 1e-3
