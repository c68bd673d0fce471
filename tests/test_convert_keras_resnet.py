"""convert_keras_resnet: keras.applications ResNet -> OD API classification checkpoint.

The reference is always an independent keras.applications ResNet-50; the
checkpoint is read back through the OD API's own fine-tune restore into GC
Faster R-CNN and GC RetinaNet models, and every backbone weight is compared.
"""
import os
import re

import numpy as np
from object_detection import model_lib_v2
from object_detection.builders import model_builder
from object_detection.protos import train_pb2
from object_detection.utils import config_util
from object_detection.utils import model_util
import pytest
import tensorflow as tf

from conftest import REPO_ROOT
from conftest import run_python
import tiny_configs
from gc_detection.od_api import keras_resnet_conversion

CONFIG_DIR = os.path.join(REPO_ROOT, 'pipeline_configs')
FASTER_RCNN_GC = os.path.join(CONFIG_DIR, 'faster_rcnn_resnet50_v1_gc_600x1024_coco.config')
RETINANET_GC = os.path.join(CONFIG_DIR, 'ssd_resnet50_v1_fpn_gc_640x640_coco.config')
KERAS_EPSILON, OD_EPSILON = 1.001e-5, 1e-5
NUM_RESNET50_WEIGHTS = 265  # 53 convolutions (kernel) + 53 batch norms (4 each)


@pytest.fixture(scope='module')
def source(tmp_path_factory):
  """(keras.applications ResNet-50, the .h5 of its weights).

  Every weight is random, conv biases and batch-norm statistics included, so
  that a bias left unfolded or a statistic left uncopied shows.
  """
  tf.keras.utils.set_random_seed(0)
  model = tf.keras.applications.ResNet50(include_top=False, weights=None)
  rng = np.random.default_rng(0)
  for variable in model.weights:
    name = variable.name.split('/')[-1].split(':')[0]  # conv1_bn/gamma:0 -> gamma
    if name == 'moving_variance':
      variable.assign(rng.uniform(0.5, 2.0, variable.shape))
    elif name in ('bias', 'beta', 'moving_mean'):
      variable.assign(rng.normal(0.0, 0.2, variable.shape))
    elif name == 'gamma':
      variable.assign(rng.normal(1.0, 0.2, variable.shape))
  path = str(tmp_path_factory.mktemp('source') / 'resnet50_notop.h5')
  model.save_weights(path)
  return model, path


@pytest.fixture(scope='module')
def converted(source, tmp_path_factory):
  """The converter's checkpoint of `source` (loaded from the .h5)."""
  prefix = tmp_path_factory.mktemp('converted') / 'resnet50_imagenet' / 'ckpt'
  return keras_resnet_conversion.convert(50, source[1], str(prefix))


def expected_weights(reference, name):
  """The OD layer `name`'s weights, in order, derived from the keras model."""
  layer = reference.get_layer(name)
  if name.endswith('_conv'):  # OD convolutions: kernel only
    kernel = layer.kernel.numpy()
    return [kernel[:, :, ::-1, :] if name == 'conv1_conv' else kernel]
  conv = reference.get_layer(name[:-len('_bn')] + '_conv')
  return [layer.gamma.numpy(), layer.beta.numpy(),
          layer.moving_mean.numpy() - conv.bias.numpy(),
          layer.moving_variance.numpy() + (KERAS_EPSILON - OD_EPSILON)]


def assert_backbone_holds(backbone, reference):
  """Every weight of every backbone layer equals the keras model's, converted."""
  checked = 0
  for layer in backbone.layers:
    if not layer.weights:
      continue
    expected = expected_weights(reference, layer.name)
    assert len(layer.weights) == len(expected), layer.name
    for index, (variable, value) in enumerate(zip(layer.weights, expected)):
      np.testing.assert_allclose(variable.numpy(), value, rtol=1e-6, atol=0,
                                 err_msg=f'{layer.name} weight {index}')
    checked += len(layer.weights)
  assert checked == len(backbone.weights) == NUM_RESNET50_WEIGHTS


def _build_detection_model(path, size):
  """Builds a training model from `path` at size x size and creates its variables."""
  configs = config_util.get_configs_from_pipeline_file(path)
  tiny_configs.set_square_input(configs['model'], size)
  model = model_builder.build(configs['model'], is_training=True)
  model.provide_groundtruth(
      groundtruth_boxes_list=[tf.constant([[0.1, 0.1, 0.6, 0.6]])],
      groundtruth_classes_list=[tf.one_hot([0], 90)])
  preprocessed, shapes = model.preprocess(tf.zeros([1, size, size, 3]))
  model.predict(preprocessed, shapes)
  return model


@pytest.mark.parametrize('config, size', [(FASTER_RCNN_GC, 64), (RETINANET_GC, 160)],
                         ids=['faster_rcnn_gc', 'retinanet_gc'])
def test_the_stock_classification_restore_fills_every_backbone_weight(
    source, converted, config, size):
  model = _build_detection_model(config, size)
  backbone = model._feature_extractor.classification_backbone  # pylint: disable=protected-access
  # The trainer's own restore: asserts every backbone object was in the file.
  model_lib_v2.load_fine_tune_checkpoint(
      model, converted, 'classification', train_pb2.CheckpointVersion.V2,
      run_model_on_dummy_input=False, input_dataset=None,
      unpad_groundtruth_tensors=True)
  assert_backbone_holds(backbone, source[0])


def _restored_od_resnet(path):
  model = keras_resnet_conversion.build_od_resnet(50)
  tf.train.Checkpoint(feature_extractor=model).restore(path).assert_consumed()
  return model


def test_random_weights_follow_the_seed(tmp_path):
  tf.keras.utils.set_random_seed(1)
  path = keras_resnet_conversion.convert(50, 'none', str(tmp_path / 'ckpt'))
  assert path == str(tmp_path / 'ckpt-0')
  assert sorted(os.listdir(tmp_path)) == ['ckpt-0.data-00000-of-00001', 'ckpt-0.index']
  tf.keras.utils.set_random_seed(1)
  reference = tf.keras.applications.ResNet50(include_top=False, weights=None)
  assert_backbone_holds(_restored_od_resnet(path), reference)


def test_the_converted_network_computes_what_the_keras_one_does(source, converted):
  reference, od = source[0], _restored_od_resnet(converted)
  rng = np.random.default_rng(1)

  def section(model, start, end):
    if start is None:
      return tf.keras.Model(model.inputs, model.get_layer(end).output)
    return model_util.extract_submodel(
        model, model.get_layer(start).output, model.get_layer(end).output)

  def assert_close(actual, expected):
    scale = np.abs(expected).max()
    assert scale > 0
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * scale)

  # training=False: other tests' stock train steps set Keras' global learning
  # phase, which would put the keras model's batch norms in training mode.
  # Stem: OD input is RGB minus means, keras' the same channels reversed.
  rgb = rng.normal(0, 50, (1, 64, 64, 3)).astype(np.float32)
  assert_close(section(od, None, 'conv1_relu')(rgb, training=False).numpy(),
               section(reference, None, 'conv1_relu')(rgb[..., ::-1],
                                                       training=False).numpy())
  # Everything after pool1 (whose padding differs by design, no weights).
  pooled = rng.uniform(0, 3, (1, 16, 16, 64)).astype(np.float32)
  assert_close(
      section(od, 'pool1_pool', 'conv5_block3_out')(pooled, training=False).numpy(),
      section(reference, 'pool1_pool', 'conv5_block3_out')(pooled, training=False).numpy())


@pytest.mark.parametrize('depth', [34, 0, '50'])
def test_a_bad_depth_is_named(tmp_path, depth):
  with pytest.raises(ValueError, match=f'--depth: must be one of 50, 101, 152, got {depth!r}'):
    keras_resnet_conversion.convert(depth, 'none', str(tmp_path / 'out' / 'ckpt'))
  assert not os.listdir(tmp_path)


def test_a_missing_h5_is_named(tmp_path):
  missing = str(tmp_path / 'missing.h5')
  with pytest.raises(FileNotFoundError, match=f'--weights: .*no such file: {re.escape(missing)}'):
    keras_resnet_conversion.convert(50, missing, str(tmp_path / 'out' / 'ckpt'))
  assert not os.listdir(tmp_path)


def test_an_unloadable_h5_fails_and_writes_nothing(tmp_path):
  corrupt = tmp_path / 'corrupt.h5'
  corrupt.write_text('not an HDF5 file')
  with pytest.raises(ValueError, match='--weights: cannot load .*corrupt.h5'):
    keras_resnet_conversion.convert(50, str(corrupt), str(tmp_path / 'out' / 'ckpt'))
  assert os.listdir(tmp_path) == ['corrupt.h5']


def test_an_existing_checkpoint_is_not_overwritten(converted):
  before = {f: open(f, 'rb').read() for f in keras_resnet_conversion.checkpoint_files(converted)}
  assert len(before) == 2
  with pytest.raises(FileExistsError, match=r'--output_prefix: .*--overwrite'):
    keras_resnet_conversion.convert(50, 'none', converted[:-len('-0')])
  assert {f: open(f, 'rb').read() for f in keras_resnet_conversion.checkpoint_files(converted)} == before
  assert sorted(os.listdir(os.path.dirname(converted))) == sorted(
      os.path.basename(f) for f in before)


def _tiny_model(value):
  model = tf.keras.Sequential([tf.keras.layers.Dense(
      2, kernel_initializer=tf.keras.initializers.Constant(value))])
  model.build((None, 3))
  return model


def _restored_kernel(path):
  model = _tiny_model(0.0)
  tf.train.Checkpoint(feature_extractor=model).restore(path).assert_consumed()
  return model.weights[0].numpy()


def test_overwrite_replaces_the_checkpoint(tmp_path):
  path = str(tmp_path / 'ckpt-0')
  keras_resnet_conversion.save_atomically(_tiny_model(1.0), path)
  with pytest.raises(FileExistsError):
    keras_resnet_conversion.save_atomically(_tiny_model(2.0), path)
  assert (_restored_kernel(path) == 1.0).all()
  keras_resnet_conversion.save_atomically(_tiny_model(2.0), path, overwrite=True)
  assert (_restored_kernel(path) == 2.0).all()
  assert sorted(os.listdir(tmp_path)) == ['ckpt-0.data-00000-of-00001', 'ckpt-0.index']


@pytest.mark.parametrize('failing', ['write', 'move_index'])
def test_a_failure_while_saving_leaves_nothing(tmp_path, monkeypatch, failing):
  if failing == 'write':  # the files are written (partly), then it fails
    write = tf.train.Checkpoint.write

    def write_then_fail(self, prefix, **kwargs):
      write(self, prefix, **kwargs)
      raise OSError('disk full')
    monkeypatch.setattr(tf.train.Checkpoint, 'write', write_then_fail)
  else:  # the data file is in place, moving the .index fails
    replace = os.replace

    def replace_data_only(source_path, destination):
      if destination.endswith('.index'):
        raise OSError('disk full')
      replace(source_path, destination)
    monkeypatch.setattr(os, 'replace', replace_data_only)
  with pytest.raises(OSError, match='disk full'):
    keras_resnet_conversion.save_atomically(_tiny_model(1.0), str(tmp_path / 'ckpt-0'))
  assert not os.listdir(tmp_path)  # neither checkpoint files nor scratch


def test_layers_are_matched_by_name(source):
  target = keras_resnet_conversion.build_od_resnet(50)
  target.get_layer('conv3_block2_2_bn')._name = 'renamed_bn'  # pylint: disable=protected-access
  before = [v.numpy() for v in target.weights]
  with pytest.raises(ValueError, match="layer 'conv3_block2_2_bn' has weights "
                     'in the keras.applications ResNet only'):
    keras_resnet_conversion.copy_weights(source[0], target)
  for variable, value in zip(target.weights, before):  # nothing was copied
    np.testing.assert_array_equal(variable.numpy(), value)


def test_a_shape_mismatch_is_named(source):
  from object_detection.models.keras_models import resnet_v1  # pylint: disable=g-import-not-at-top
  narrow = resnet_v1.resnet_v1_50(batchnorm_training=False, weights=None,
                                  include_top=False, depth_multiplier=0.5)
  with pytest.raises(ValueError, match=r"layer 'conv1_conv': weight .*kernel.* "
                     r'has shape \(7, 7, 3, 32\), the conversion gives shape '
                     r'\(7, 7, 3, 64\)'):
    keras_resnet_conversion.copy_weights(source[0], narrow)


def test_the_command_line(tmp_path):
  result = run_python(['-m', 'gc_detection.cli.convert_keras_resnet', '--depth=50',
                       '--weights=none', f'--output_prefix={tmp_path}/r50/ckpt'])
  assert result.returncode == 0, result.stderr
  path = str(tmp_path / 'r50' / 'ckpt-0')
  assert f'fine_tune_checkpoint: "{path}"' in result.stdout
  assert 'fine_tune_checkpoint_type: "classification"' in result.stdout
  assert keras_resnet_conversion.checkpoint_files(path) == [
      path + '.data-00000-of-00001', path + '.index']
  result = run_python(['-m', 'gc_detection.cli.convert_keras_resnet', '--depth=34',
                       '--weights=none', f'--output_prefix={tmp_path}/r34/ckpt'])
  assert result.returncode == 2
  assert '--depth: must be one of 50, 101, 152, got 34' in result.stderr
  assert not os.path.exists(tmp_path / 'r34')
