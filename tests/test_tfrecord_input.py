"""The OD API's own TFRecord input pipeline works on TF 2.15 with the shim.

Generated images are written as tf.Examples, read back through the stock
TfExampleDecoder and `inputs.train_input`, and compared with the arrays they
were made from (the independent reference).
"""
import numpy as np
from object_detection import inputs
from object_detection.core import standard_fields as fields
from object_detection.data_decoders import tf_example_decoder
from object_detection.utils import config_util
import pytest
import tensorflow as tf

from conftest import BASELINE_CONFIG
from conftest import run_python
import gc_detection
from gc_detection.data import shapes
from gc_detection import atomic_files
from gc_detection.data import tf_example

NUM_IMAGES = 3


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
  """(examples, tfrecord path, label map path) of a small generated set."""
  gc_detection.register()
  work_dir = tmp_path_factory.mktemp('shapes')
  examples = shapes.generate(seed=7, count=NUM_IMAGES)
  record = str(work_dir / 'shapes.tfrecord')
  label_map = str(work_dir / 'label_map.pbtxt')
  assert tf_example.write_tfrecord(record, examples) == NUM_IMAGES
  atomic_files.write_text(
      label_map, tf_example.label_map_text(shapes.SHAPE_COLOURS))
  return examples, record, label_map


def _normalised(example):
  height, width = example.image.shape[:2]
  return example.boxes / np.array([height, width, height, width], np.float64)


def test_the_stock_decoder_returns_the_written_pixels_boxes_and_classes(dataset):
  examples, record, label_map = dataset
  decoder = tf_example_decoder.TfExampleDecoder(label_map_proto_file=label_map)
  records = list(tf.data.TFRecordDataset(record))
  assert len(records) == NUM_IMAGES
  for example, serialized in zip(examples, records):
    decoded = decoder.decode(serialized)
    np.testing.assert_array_equal(decoded[fields.InputDataFields.image].numpy(),
                                  example.image)
    np.testing.assert_allclose(
        decoded[fields.InputDataFields.groundtruth_boxes].numpy(),
        _normalised(example), atol=1e-6)
    np.testing.assert_array_equal(
        decoded[fields.InputDataFields.groundtruth_classes].numpy(),
        example.class_ids)
    assert decoded[fields.InputDataFields.source_id].numpy().decode() == (
        example.filename)


def test_the_stock_train_input_resizes_pads_and_one_hot_encodes(dataset):
  examples, record, label_map = dataset
  configs = config_util.get_configs_from_pipeline_file(BASELINE_CONFIG)
  configs = config_util.merge_external_params_with_configs(configs, kwargs_dict={
      'train_input_path': record, 'label_map_path': label_map,
      'batch_size': 1, 'num_classes': len(shapes.SHAPE_COLOURS)})
  train_config = configs['train_config']
  train_config.ClearField('data_augmentation_options')  # keep it comparable
  train_config.max_number_of_boxes = 5
  train_input_config = configs['train_input_config']
  train_input_config.shuffle = False
  features, labels = next(iter(inputs.train_input(
      train_config, train_input_config, configs['model'])))

  example = examples[0]
  height, width = example.image.shape[:2]
  # keep_aspect_ratio_resizer 600/1024: the short side becomes 600 (the long
  # side stays under 1024), then the image is padded to 1024x1024.
  scale = 600 / min(height, width)
  resized = (round(height * scale), round(width * scale))
  assert features[fields.InputDataFields.image].shape == (1, 1024, 1024, 3)
  np.testing.assert_array_equal(
      features[fields.InputDataFields.true_image_shape].numpy(),
      [[resized[0], resized[1], 3]])
  # Box coordinates are normalised to the padded 1024x1024 canvas.
  num_boxes = len(example.boxes)
  assert labels[fields.InputDataFields.num_groundtruth_boxes].numpy()[0] == num_boxes
  np.testing.assert_allclose(
      labels[fields.InputDataFields.groundtruth_boxes].numpy()[0, :num_boxes],
      example.boxes * scale / 1024, atol=1e-5)
  one_hot = labels[fields.InputDataFields.groundtruth_classes].numpy()[0, :num_boxes]
  np.testing.assert_array_equal(
      one_hot, np.eye(len(shapes.SHAPE_COLOURS))[example.class_ids - 1])
  # The image is the original, resized (bilinear) and preprocessed by the
  # ResNet v1 extractor (minus the ImageNet channel means): compare mean
  # colours over the unpadded area.
  image = features[fields.InputDataFields.image].numpy()[0]
  imagenet_means = np.array([123.68, 116.779, 103.939])
  np.testing.assert_allclose(
      image[:resized[0], :resized[1]].mean(axis=(0, 1)),
      example.image.astype(np.float64).mean(axis=(0, 1)) - imagenet_means,
      atol=1.0)
  padding = np.concatenate([image[resized[0]:].reshape(-1, 3),
                            image[:, resized[1]:].reshape(-1, 3)])
  assert np.all(padding == padding[0])


def test_without_the_shim_the_stock_decoder_fails_on_tf_2_15(dataset):
  # Proves the shim is needed (and that the test above would catch its loss).
  _, record, _ = dataset
  result = run_python(
      'import tensorflow as tf\n'
      'from object_detection.data_decoders import tf_example_decoder\n'
      f'serialized = next(iter(tf.data.TFRecordDataset({record!r})))\n'
      'tf_example_decoder.TfExampleDecoder().decode(serialized)\n')
  assert result.returncode != 0
  assert "has no attribute 'case'" in result.stderr


def test_register_is_idempotent_and_restores_both_names():
  from tensorflow.python.ops import cond
  from tensorflow.python.ops import control_flow_case
  from tensorflow.python.ops import control_flow_ops
  gc_detection.register()
  gc_detection.register()
  assert control_flow_ops.case is control_flow_case.case
  assert control_flow_ops.cond is cond.cond


def test_a_bad_image_is_refused_with_its_file_name():
  bad = tf_example.DetectionExample(
      image=np.zeros((8, 8), np.uint8), boxes=np.zeros((0, 4)),
      class_ids=np.zeros((0,), int), class_names=[], filename='bad.png')
  with pytest.raises(ValueError, match='bad.png.*uint8 \\(height, width, 3\\)'):
    tf_example.to_tf_example(bad)


def test_a_failed_write_leaves_no_file(tmp_path):
  path = str(tmp_path / 'partial.tfrecord')
  good = shapes.generate(seed=1, count=1)[0]
  bad = tf_example.DetectionExample(
      image=good.image, boxes=good.boxes, class_ids=good.class_ids[:0],
      class_names=[], filename='mismatch.png')
  with pytest.raises(ValueError, match='mismatch.png'):
    tf_example.write_tfrecord(path, [good, bad])
  assert list(tmp_path.iterdir()) == []
