"""RetinaNet (SSD ResNet-FPN) + GC in process: placement, checkpoints, XLA + bf16."""
import os

import numpy as np
from object_detection import model_lib_v2
from object_detection.builders import model_builder
from object_detection.core import standard_fields as fields
from object_detection.protos import train_pb2
from object_detection.utils import config_util
import pytest
import tensorflow as tf

from conftest import REPO_ROOT
from gc_detection.layers import GlobalContextAttention

CONFIG_DIR = os.path.join(REPO_ROOT, 'pipeline_configs')
STOCK_R50 = os.path.join(CONFIG_DIR, 'ssd_resnet50_v1_fpn_640x640_coco.config')
GC_R50 = os.path.join(CONFIG_DIR, 'ssd_resnet50_v1_fpn_gc_640x640_coco.config')
SIZE = 160


def _configs(path, size=SIZE, block_edit=None, tmp_path=None):
  if block_edit:
    text = block_edit(open(path).read())
    path = str(tmp_path / 'pipeline.config')
    open(path, 'w').write(text)
  configs = config_util.get_configs_from_pipeline_file(path)
  resizer = configs['model'].ssd.image_resizer.fixed_shape_resizer
  resizer.height = resizer.width = size
  return configs


def _image(seed=0, size=SIZE):
  return tf.constant(np.random.default_rng(seed).uniform(
      0, 255, (1, size, size, 3)).astype(np.float32))


def _built(configs, is_training=False):
  model = model_builder.build(configs['model'], is_training=is_training)
  preprocessed, shapes = model.preprocess(_image())
  return model, model.predict(preprocessed, shapes)


def test_the_module_refines_c5_before_the_fpn_and_reaches_every_level(tmp_path):
  stock, stock_predictions = _built(_configs(STOCK_R50))
  checkpoint = tf.train.Checkpoint(model=stock).save(str(tmp_path / 'stock' / 'ckpt'))

  def feature_maps(initialization):
    configs = _configs(GC_R50, tmp_path=tmp_path, block_edit=lambda t: t.replace(
        'initialization: BOTTLENECK', f'initialization: {initialization}'))
    model, _ = _built(configs)
    tf.train.Checkpoint(model=model).restore(checkpoint).expect_partial()
    extractor = model._feature_extractor  # pylint: disable=protected-access
    assert isinstance(extractor.global_context, GlobalContextAttention)
    assert extractor.global_context.channels == 2048  # built on C5
    assert not any(isinstance(layer, GlobalContextAttention)
                   for layer in extractor.classification_backbone.layers)
    preprocessed, shapes = model.preprocess(_image())
    return [f.numpy() for f in model.predict(preprocessed, shapes)['feature_maps']]

  preprocessed, shapes = stock.preprocess(_image())
  expected = [f.numpy() for f in stock.predict(preprocessed, shapes)['feature_maps']]
  # A zero output projection makes the module the identity: the stock model.
  for gc_level, stock_level in zip(feature_maps('ZERO_OUTPUT'), expected):
    np.testing.assert_allclose(gc_level, stock_level, atol=1e-5)
  # Random attention changes C5, and through the top-down path P3..P7 all.
  changed = feature_maps('GLOROT')
  assert len(changed) == 5
  for level, (gc_level, stock_level) in enumerate(zip(changed, expected), start=3):
    assert not np.allclose(gc_level, stock_level, atol=1e-4), f'P{level}'
  del stock_predictions


def _keys_and_values(path):
  reader = tf.train.load_checkpoint(path)
  return reader, {k for k in reader.get_variable_to_shape_map() if k.startswith('model/')}


@pytest.mark.parametrize('checkpoint_type', ['classification', 'detection'])
def test_a_stock_checkpoint_restores_into_every_stock_variable(checkpoint_type,
                                                               tmp_path):
  stock, _ = _built(_configs(STOCK_R50))
  stock_path = tf.train.Checkpoint(model=stock).save(str(tmp_path / 'stock' / 'ckpt'))
  if checkpoint_type == 'classification':
    # What the ImageNet conversion writes: the backbone alone.
    stock_path = tf.train.Checkpoint(
        feature_extractor=stock._feature_extractor.classification_backbone).save(  # pylint: disable=protected-access
            str(tmp_path / 'classification' / 'ckpt'))
  # GLOROT: the module keeps its start (BOTTLENECK: test_bottleneck_initialization).
  gc_model, _ = _built(_configs(GC_R50, tmp_path=tmp_path, block_edit=lambda t: t.replace(
      'initialization: BOTTLENECK', 'initialization: GLOROT')))
  gc_before = [v.numpy().copy()
               for v in gc_model._feature_extractor.global_context.variables]  # pylint: disable=protected-access
  # The stock trainer's restore; it asserts that every restored object was in
  # the checkpoint.
  model_lib_v2.load_fine_tune_checkpoint(
      gc_model, stock_path, checkpoint_type, train_pb2.CheckpointVersion.V2,
      run_model_on_dummy_input=False, input_dataset=None,
      unpad_groundtruth_tensors=False)

  stock_reader = tf.train.load_checkpoint(stock_path)
  stock_keys = {k for k in stock_reader.get_variable_to_shape_map()
                if not k.startswith(('save_counter', '_CHECKPOINTABLE_OBJECT_GRAPH'))}
  root = 'feature_extractor' if checkpoint_type == 'classification' else 'model'
  if checkpoint_type == 'classification':
    saved = tf.train.Checkpoint(
        feature_extractor=gc_model._feature_extractor.classification_backbone  # pylint: disable=protected-access
    ).save(str(tmp_path / 'gc' / 'ckpt'))
  else:
    saved = tf.train.Checkpoint(model=tf.train.Checkpoint(
        _feature_extractor=gc_model._feature_extractor)).save(  # pylint: disable=protected-access
            str(tmp_path / 'gc' / 'ckpt'))
    stock_keys = {k for k in stock_keys if k.startswith('model/_feature_extractor/')}
  gc_reader = tf.train.load_checkpoint(saved)
  stock_keys = {k for k in stock_keys if k.startswith(root + '/')}
  assert len(stock_keys) > 250
  available = set(gc_reader.get_variable_to_shape_map())
  assert stock_keys <= available
  for key in stock_keys:
    np.testing.assert_array_equal(gc_reader.get_tensor(key),
                                  stock_reader.get_tensor(key), err_msg=key)
  for before, variable in zip(
      gc_before, gc_model._feature_extractor.global_context.variables):  # pylint: disable=protected-access
    np.testing.assert_array_equal(variable.numpy(), before)


def test_source_block_must_be_a_conv5_block(tmp_path):
  with pytest.raises(ValueError, match=r"source_block: 'conv4_block6' is not a block "
                                       r'of resnet_v1_50.*conv5_block2 .. conv5_block3'):
    configs = _configs(GC_R50, tmp_path=tmp_path, block_edit=lambda t: t.replace(
        'initialization: BOTTLENECK', 'source_block: "conv4_block6"'))
    model_builder.build(configs['model'], is_training=False)


def test_bfloat16_training_step_compiles_with_xla_and_is_finite(tmp_path):
  configs = _configs(GC_R50, tmp_path=tmp_path, block_edit=lambda t: t.replace(
      'use_bfloat16: false', 'use_bfloat16: true').replace(
          'num_heads: 4', 'num_heads: 8'))
  assert configs['train_config'].use_bfloat16
  tf.keras.mixed_precision.set_global_policy('mixed_bfloat16')  # as train_loop does
  try:
    model = model_builder.build(configs['model'], is_training=True)
    optimizer = tf.keras.optimizers.SGD(1e-4, momentum=0.9)
    batch = 2
    images = tf.random.uniform([batch, SIZE, SIZE, 3], 0, 255, seed=1)
    features = {
        fields.InputDataFields.image: model.preprocess(images)[0],
        fields.InputDataFields.true_image_shape: tf.constant([[SIZE, SIZE, 3]] * batch),
    }
    labels = {
        fields.InputDataFields.num_groundtruth_boxes: tf.constant([2] * batch),
        fields.InputDataFields.groundtruth_boxes: tf.constant(
            [[[0.1, 0.1, 0.5, 0.4], [0.4, 0.5, 0.9, 0.9]]] * batch),
        fields.InputDataFields.groundtruth_classes: tf.one_hot([[1, 5]] * batch, 90),
        fields.InputDataFields.groundtruth_weights: tf.ones([batch, 2]),
    }

    @tf.function(jit_compile=True)
    def train_step(features, labels):
      return model_lib_v2.eager_train_step(
          model, features, labels, unpad_groundtruth_tensors=True,
          optimizer=optimizer, training_step=optimizer.iterations)

    # eager_train_step sets the Keras learning phase for good; the scope puts
    # it back, so later tests' training=None layer calls stay inference calls.
    with tf.keras.backend.learning_phase_scope(1):
      losses = train_step(features, labels)
      losses = train_step(features, labels)
    # Compiled as one XLA cluster: the function's graph holds an XlaLaunch-able
    # computation, proven by the compiler IR being available.
    hlo = train_step.experimental_get_compiler_ir(features, labels)(stage='hlo')
    assert 'ENTRY' in hlo
    total = float(losses['Loss/total_loss'])
    assert np.isfinite(total) and total > 0
    gc_layer = model._feature_extractor.global_context  # pylint: disable=protected-access
    assert gc_layer.compute_dtype == 'bfloat16' and gc_layer.num_heads == 8
  finally:
    tf.keras.mixed_precision.set_global_policy('float32')
