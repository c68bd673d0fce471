"""The resnet_gc backbone of official.vision: registration, configs, restore, initialisation.

References: official.vision's own ResNet (same weights) for the stock path,
the checkpoint files read with tf.train.load_checkpoint for the restore, and
a NumPy float64 batch-norm fold for the bottleneck initialisation.
"""
import json

import numpy as np
import pytest
import tensorflow as tf
import yaml

from official.core import exp_factory
from official.core import task_factory
from official.vision.configs import common
from official.vision.modeling.backbones import factory
from official.vision.modeling.backbones import resnet

from gc_detection.layers import global_context_settings as settings_lib
from gc_detection.model_garden import backbone_config
from gc_detection.model_garden import backbone_initialization
from gc_detection.model_garden import registry  # pylint: disable=unused-import
from gc_detection.model_garden import resnet_gc
from gc_detection.model_garden import segmentation_task
from conftest import run_python

SIZE = 64
INPUT_SPECS = tf.keras.layers.InputSpec(shape=[None, SIZE, SIZE, 3])
EXPERIMENTS = ('seg_resnet50_fpn_coco', 'seg_resnet50_fpn_gc_coco',
               'seg_resnet101_fpn_coco', 'seg_resnet101_fpn_gc_coco')


def _build(stage=5, model_id=50, regularizer=None, **global_context):
  config = backbone_config.Backbone(
      type='resnet_gc', resnet_gc=backbone_config.ResNetGlobalContext(
          model_id=model_id, global_context_stage=stage,
          global_context=backbone_config.GlobalContext(**global_context)))
  return factory.build_backbone(INPUT_SPECS, config, common.NormActivation(),
                                regularizer)


def _randomize(model, seed):
  """Every weight random (batch-norm variances positive), so copies show."""
  rng = np.random.default_rng(seed)
  for weight in model.weights:
    value = rng.normal(0, 0.05, weight.shape)
    if 'variance' in weight.name:
      value = rng.uniform(0.5, 1.5, weight.shape)
    weight.assign(value.astype(np.float32))


def _stock_checkpoint(tmp_path, seed=1, model_id=50):
  stock = resnet.ResNet(model_id, input_specs=INPUT_SPECS)
  _randomize(stock, seed)
  return stock, tf.train.Checkpoint(backbone=stock).write(str(tmp_path / 'stock' / 'ckpt'))


def test_experiments_backbone_and_tasks_are_registered():
  for name in EXPERIMENTS:
    config = exp_factory.get_exp_config(name)
    expected = 'resnet_gc' if '_gc_' in name else 'resnet'
    assert config.task.model.backbone.type == expected, name
    assert isinstance(task_factory.get_task(config.task), segmentation_task.SegmentationTask)
  assert factory._REGISTERED_BACKBONE_CLS['resnet_gc'] is resnet_gc.build_resnet_gc  # pylint: disable=protected-access


def test_the_start_up_hook_registers_with_the_stock_registry_imports_only():
  code = ('import official.vision.registry_imports\n'
          'from official.core import exp_factory\n'
          'print(exp_factory.get_exp_config("seg_resnet50_fpn_gc_coco").task.model.backbone.type)\n')
  result = run_python(code)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.strip().splitlines()[-1] == 'resnet_gc'
  result = run_python(code, env={'GC_DETECTION_AUTOREGISTER': '0'})
  assert result.returncode != 0
  assert 'seg_resnet50_fpn_gc_coco' in result.stderr


def test_yaml_round_trip_and_strict_overrides(tmp_path):
  config = exp_factory.get_exp_config('seg_resnet50_fpn_gc_coco')
  config.override({'task': {'model': {'backbone': {'resnet_gc': {
      'global_context_stage': 4, 'global_context': {'num_heads': 8, 'chunk_threshold': 0}}}}}})
  path = tmp_path / 'params.yaml'
  path.write_text(yaml.safe_dump(config.as_dict()))
  fresh = exp_factory.get_exp_config('seg_resnet50_fpn_gc_coco')
  fresh.override(yaml.safe_load(path.read_text()), is_strict=True)
  as_lists = lambda c: json.loads(json.dumps(c.as_dict()))  # tuples -> lists
  assert as_lists(fresh) == as_lists(config)
  settings = backbone_config.global_context_settings(fresh.task.model.backbone.resnet_gc)
  assert (settings.num_heads, settings.chunk_threshold) == (8, None)
  with pytest.raises(KeyError, match='num_headz'):
    fresh.override({'task': {'model': {'backbone': {'resnet_gc': {
        'global_context': {'num_headz': 8}}}}}}, is_strict=True)


@pytest.mark.parametrize('field, value, message', [
    ('num_heads', 0, 'global_context.num_heads: must be a positive integer, got 0'),
    ('num_heads', 3, 'num_heads'),
    ('attention_dropout', 1.0, r'global_context.attention_dropout: must be in \[0, 1\)'),
    ('initialization', 'xavier', "global_context.initialization: 'xavier' is not one of"),
    ('source_block', 'conv5_block1', "source_block: 'conv5_block1' is not a block"),
])
def test_bad_values_name_the_field(field, value, message):
  with pytest.raises(settings_lib.InvalidGlobalContextSettings, match=message):
    _build(**{field: value})


def test_bad_depth_and_stage_name_the_field():
  with pytest.raises(settings_lib.InvalidGlobalContextSettings,
                     match='resnet_gc.model_id: 18 has no resnet_gc'):
    _build(model_id=18)
  with pytest.raises(settings_lib.InvalidGlobalContextSettings,
                     match='resnet_gc.global_context_stage: 3 is not one of'):
    _build(stage=3)


@pytest.mark.parametrize('stage', [5, 4])
def test_outputs_are_the_stock_resnet_with_the_module_on_one_stage(stage):
  backbone = _build(stage=stage, initialization='glorot')
  _randomize(backbone, 2)
  stock = backbone.stock_view()
  for stock_layer, gc_layer in zip([l for l in stock.layers if l.weights],
                                   backbone.stock_layers()):
    stock_layer.set_weights(gc_layer.get_weights())
  images = tf.random.stateless_uniform([2, SIZE, SIZE, 3], seed=[3, 4])
  outputs = backbone(images, training=False)
  reference = stock(images, training=False)
  assert sorted(outputs) == ['2', '3', '4', '5']
  for level in [str(l) for l in range(2, stage)]:
    np.testing.assert_allclose(outputs[level], reference[level], rtol=1e-5, atol=1e-5)
  refined = backbone.global_context(reference[str(stage)], training=False)
  np.testing.assert_allclose(outputs[str(stage)], refined, rtol=1e-4, atol=1e-4)
  assert np.abs(refined - reference[str(stage)]).max() > 1e-3, 'the module did nothing'


def _checkpoint_values(path):
  reader = tf.train.load_checkpoint(path)
  return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
          if key.startswith('backbone/layer_with_weights-')}


@pytest.mark.parametrize('stage', [5, 4])
def test_a_stock_checkpoint_restores_every_stock_variable(tmp_path, stage):
  _, path = _stock_checkpoint(tmp_path)
  backbone = _build(stage=stage, initialization='glorot')
  module_before = [w.numpy() for w in backbone.global_context.weights]
  if stage == 4:
    # What official.vision's own Task.initialize does, and why it cannot be used.
    with pytest.raises((ValueError, AssertionError)):
      tf.train.Checkpoint(backbone=_build(stage=4)).read(path).expect_partial(
          ).assert_existing_objects_matched()
  assert backbone_initialization.restore_backbone(backbone, path) is False
  stored = _checkpoint_values(path)
  layers = backbone.stock_layers()
  restored = 0
  for key, value in stored.items():
    # backbone/layer_with_weights-<i>/<attribute>/.../<variable>/.ATTRIBUTES/VARIABLE_VALUE:
    # follow the checkpoint's object path from the i-th stock layer.
    parts = key.split('/')
    variable = layers[int(parts[1].split('-')[1])]
    for attribute in parts[2:-2]:
      variable = getattr(variable, attribute)
    np.testing.assert_array_equal(variable.numpy(), value, err_msg=key)
    restored += 1
  assert restored == sum(len(layer.weights) for layer in layers)
  for before, after in zip(module_before, backbone.global_context.weights):
    np.testing.assert_array_equal(before, after.numpy())


def _folded(kernel, batch_norm):
  """NumPy float64 fold of a 1x1 kernel (1, 1, in, out) and a batch norm."""
  gamma, beta, mean, variance = (np.float64(w.numpy()) for w in (
      batch_norm.gamma, batch_norm.beta, batch_norm.moving_mean, batch_norm.moving_variance))
  scale = gamma / np.sqrt(variance + batch_norm.epsilon)
  return np.float64(kernel.numpy())[0, 0] * scale, beta - mean * scale


@pytest.mark.parametrize('stage, source_block, index', [(5, '', 2), (4, 'conv4_block3', 2)])
def test_bottleneck_initialisation_copies_the_source_block(tmp_path, stage, source_block, index):
  _, path = _stock_checkpoint(tmp_path)
  backbone = _build(stage=stage, source_block=source_block)
  backbone_initialization.initialize_backbone(backbone, path)
  blocks = [l for l in backbone.layers if type(l).__name__ == 'BottleneckBlock']
  start = sum(spec[2] for spec in resnet.RESNET_SPECS[50][:stage - 2])
  block = blocks[start + index]
  reduce_kernel, reduce_bias = _folded(block._conv1.kernel, block._norm1)  # pylint: disable=protected-access
  expand_kernel, expand_bias = _folded(block._conv3.kernel, block._norm3)  # pylint: disable=protected-access
  weights = backbone.global_context.layer_weights(0)
  qkv = weights['qkv_kernel'].numpy().reshape(reduce_kernel.shape[0], 3, -1)
  for part in range(3):
    np.testing.assert_allclose(qkv[:, part], reduce_kernel, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(weights['qkv_bias'].numpy().reshape(3, -1),
                             np.tile(reduce_bias, (3, 1)), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(weights['output_kernel'].numpy().reshape(expand_kernel.shape),
                             expand_kernel, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(weights['output_bias'].numpy(), expand_bias, rtol=1e-5, atol=1e-6)


def test_a_gc_checkpoint_restores_the_module_and_skips_the_initialisation(tmp_path):
  trained = _build(initialization='glorot')
  _randomize(trained, 5)
  path = tf.train.Checkpoint(backbone=trained).write(str(tmp_path / 'gc' / 'ckpt'))
  backbone = _build()
  backbone_initialization.initialize_backbone(backbone, path)
  for expected, actual in zip(trained.weights, backbone.weights):
    np.testing.assert_array_equal(expected.numpy(), actual.numpy())


def test_a_checkpoint_of_another_depth_is_named(tmp_path):
  _, path = _stock_checkpoint(tmp_path, model_id=101)
  with pytest.raises(backbone_initialization.BackboneCheckpointError,
                     match=r'task.init_checkpoint: .*stock official.vision ResNet-50'):
    backbone_initialization.restore_backbone(_build(), path)


def test_the_models_l2_regularizer_reaches_the_module():
  weight_decay = 1e-4
  backbone = _build(regularizer=tf.keras.regularizers.l2(weight_decay / 2), initialization='glorot')
  _randomize(backbone, 7)
  module = backbone.global_context
  expected = sum(weight_decay / 2 * np.sum(np.float64(w.numpy()) ** 2)
                 for name, w in module.layer_weights(0).items() if name.endswith('kernel'))
  np.testing.assert_allclose(float(tf.add_n(module.losses)), expected, rtol=1e-5)


def test_tensorflow_datasets_imports_with_the_pinned_protobuf():
  # tensorflow-metadata 1.21 (protobuf >= 5 only) broke this on the tf215 stack,
  # and with it official.vision's TFDS input path.
  result = run_python('import tensorflow_datasets as tfds\n'
                      'from official.vision.dataloaders import tfds_factory\n'
                      'print(tfds.__version__)\n')
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'runtime_version' not in result.stderr
