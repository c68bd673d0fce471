"""Faster R-CNN + GC in process: configs, settings, errors, checkpoints, masks."""
import glob
import os

from google.protobuf import text_format
import numpy as np
from object_detection.builders import model_builder
from object_detection.protos import pipeline_pb2
from object_detection.protos import train_pb2
from object_detection.utils import config_util
import pytest
import tensorflow as tf

from conftest import REPO_ROOT
from conftest import run_python
import tiny_configs
import gc_detection
from gc_detection.od_api import startup_hook
from gc_detection import od_api
from gc_detection.od_api import touch_points
from gc_detection.layers import GlobalContextAttention
from gc_detection.od_api.extractors import faster_rcnn_resnet_gc_feature_extractor as gc_extractors
import shipped_configs  # dev/ (tests/conftest.py)

CONFIG_DIR = os.path.join(REPO_ROOT, 'pipeline_configs')
GC_R50 = os.path.join(CONFIG_DIR, 'faster_rcnn_resnet50_v1_gc_600x1024_coco.config')
BASELINE_R50 = os.path.join(CONFIG_DIR, 'faster_rcnn_resnet50_v1_600x1024_coco.config')
IMAGE_SIZE = 64


def _configs_from_text(text, tmp_path, name='pipeline.config'):
  path = tmp_path / name
  path.write_text(text)
  return config_util.get_configs_from_pipeline_file(str(path))


def _small(configs, size=None):
  """Shrinks the input of a Faster R-CNN (64 px) or SSD (160 px) config."""
  meta_architecture = configs['model'].WhichOneof('model')
  size = size or (IMAGE_SIZE if meta_architecture == 'faster_rcnn' else 160)
  tiny_configs.set_square_input(configs['model'], size)
  return configs


def _gc_text(block, extractor='faster_rcnn_resnet50_gc', base=BASELINE_R50):
  text = open(base).read().replace("type: 'faster_rcnn_resnet50_keras'",
                                   f"type: '{extractor}'")
  return text + (f'\n[gc_detection.protos.global_context] {{ {block} }}\n'
                 if block is not None else '')


def _predict(model, seed=0, size=IMAGE_SIZE):
  image = tf.constant(np.random.default_rng(seed).uniform(
      0, 255, (1, size, size, 3)).astype(np.float32))
  preprocessed, shapes = model.preprocess(image)
  return model.predict(preprocessed, shapes), shapes


def _gc_layer(model):
  return model._feature_extractor.global_context  # pylint: disable=protected-access


def test_committed_configs_equal_the_generator_output(tmp_path):
  written = shipped_configs.write_all(str(tmp_path))
  # pipeline_configs/far_cue is written by far_cue_configs (test_far_cue_configs).
  committed = sorted(path for path in glob.glob(os.path.join(CONFIG_DIR, '**', '*.config'),
                                                recursive=True)
                     if os.path.relpath(path, CONFIG_DIR).split(os.sep)[0] != 'far_cue')
  assert sorted(os.path.relpath(p, tmp_path) for p in written) == sorted(
      os.path.relpath(p, CONFIG_DIR) for p in committed)
  for path in written:
    assert open(path).read() == open(
        os.path.join(CONFIG_DIR, os.path.relpath(path, tmp_path))).read(), path


@pytest.mark.parametrize('path', sorted(
    glob.glob(os.path.join(CONFIG_DIR, '**', '*.config'), recursive=True)),
                         ids=os.path.basename)
def test_every_shipped_config_parses_builds_and_predicts(path):
  configs = _small(config_util.get_configs_from_pipeline_file(path))
  meta_architecture = configs['model'].WhichOneof('model')
  extractor_type = getattr(configs['model'],
                           meta_architecture).feature_extractor.type
  model = model_builder.build(configs['model'], is_training=False)
  if meta_architecture == 'faster_rcnn':
    predictions, _ = _predict(model)
    assert predictions['rpn_features_to_crop'][0].shape[-1] == 1024
  else:
    predictions, _ = _predict(model, size=160)
    assert [f.shape[1] for f in predictions['feature_maps']] == [20, 10, 5, 3, 2]
  pipeline = pipeline_pb2.TrainEvalPipelineConfig()
  text_format.Merge(open(path).read(), pipeline)
  from gc_detection.protos import global_context_pb2
  has_block = pipeline.HasExtension(global_context_pb2.global_context)
  assert has_block == extractor_type.endswith('_gc')
  if has_block:
    block = pipeline.Extensions[global_context_pb2.global_context]
    layer = _gc_layer(model)
    assert (layer.num_heads, layer.num_layers) == (block.num_heads, block.num_layers)
    assert layer.built  # the C4 map went through it


def test_two_models_in_one_process_keep_their_own_settings(tmp_path):
  eight_by_two = _small(_configs_from_text(
      _gc_text('num_heads: 8 num_layers: 2 initialization: GLOROT'), tmp_path, 'a'))
  defaults = _small(_configs_from_text(_gc_text(None), tmp_path, 'b'))
  baseline = _small(config_util.get_configs_from_pipeline_file(BASELINE_R50))
  # Parse all three first, then build: settings must follow the config object.
  models = [model_builder.build(c['model'], is_training=False)
            for c in (eight_by_two, defaults, baseline)]
  assert (_gc_layer(models[0]).num_heads, _gc_layer(models[0]).num_layers) == (8, 2)
  assert (_gc_layer(models[1]).num_heads, _gc_layer(models[1]).num_layers) == (4, 1)
  assert not hasattr(models[2]._feature_extractor, 'global_context')  # pylint: disable=protected-access
  _predict(models[0])
  shapes = {v.name.split('/', 1)[1]: v.shape for v in _gc_layer(models[0]).weights}
  assert shapes['block_1/qkv_kernel:0'] == (1024, 3, 8, 32)
  # Building the first config again still gives its settings.
  again = model_builder.build(eight_by_two['model'], is_training=False)
  assert _gc_layer(again).num_heads == 8


def test_the_refined_map_feeds_both_rpn_and_crops(tmp_path):
  # With a zero output projection the module is the identity: the GC model's
  # C4 features equal the stock backbone's. With random weights they differ,
  # and rpn_features_to_crop (what the crops read) is the refined map.
  configs = _small(_configs_from_text(
      _gc_text('initialization: GLOROT'), tmp_path))
  model = model_builder.build(configs['model'], is_training=False)
  predictions, _ = _predict(model)
  proposal_model = model._feature_extractor_for_proposal_features  # pylint: disable=protected-access
  assert isinstance(proposal_model.layers[-1], GlobalContextAttention)
  stock_c4 = model._feature_extractor.stock_proposal_model  # pylint: disable=protected-access
  assert stock_c4.layers == proposal_model.layers[:-1]  # shared, same order
  image = tf.constant(np.random.default_rng(0).uniform(
      0, 255, (1, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32))
  preprocessed, _ = model.preprocess(image)
  refined = proposal_model(preprocessed)
  np.testing.assert_allclose(predictions['rpn_features_to_crop'][0].numpy(),
                             refined.numpy(), atol=1e-5)
  assert not np.allclose(refined.numpy(), stock_c4(preprocessed).numpy(), atol=1e-3)
  np.testing.assert_allclose(
      refined.numpy(),
      _gc_layer(model)(stock_c4(preprocessed)).numpy(), atol=1e-5)


def _build_and_run(configs):
  model = model_builder.build(configs['model'], is_training=False)
  _predict(model)
  return model


def test_a_stock_checkpoint_restores_into_every_stock_variable(tmp_path):
  stock = _build_and_run(_small(config_util.get_configs_from_pipeline_file(BASELINE_R50)))
  stock_path = tf.train.Checkpoint(model=stock).save(str(tmp_path / 'stock' / 'ckpt'))
  # GLOROT: the module keeps its start (BOTTLENECK: test_bottleneck_initialization).
  gc_model = _build_and_run(_small(_configs_from_text(open(GC_R50).read().replace(
      'initialization: BOTTLENECK', 'initialization: GLOROT'), tmp_path)))
  gc_variable_ids = {id(v) for v in _gc_layer(gc_model).variables}
  gc_before = [v.numpy().copy() for v in _gc_layer(gc_model).variables]

  # 1. The stock trainer's fine-tune restore of type "detection" (backbone up
  # to C5); it asserts that every restored object was in the checkpoint.
  from object_detection import model_lib_v2
  model_lib_v2.load_fine_tune_checkpoint(
      gc_model, stock_path, 'detection', train_pb2.CheckpointVersion.V2,
      run_model_on_dummy_input=False, input_dataset=None,
      unpad_groundtruth_tensors=False)
  stock_reader = tf.train.load_checkpoint(stock_path)
  stock_keys = {k for k in stock_reader.get_variable_to_shape_map()
                if k.startswith('model/')}
  extractor_keys = {k for k in stock_keys if '/_feature_extractor_for_' in k}
  assert len(stock_keys) > 250 and len(extractor_keys) > 200

  def assert_restored(keys, path):
    reader = tf.train.load_checkpoint(path)
    available = set(reader.get_variable_to_shape_map())
    assert keys <= available  # every stock variable has its place
    for key in keys:  # ... and holds the stock value
      np.testing.assert_array_equal(reader.get_tensor(key),
                                    stock_reader.get_tensor(key), err_msg=key)
    return {k for k in available if k.startswith('model/')}

  assert_restored(extractor_keys, tf.train.Checkpoint(model=gc_model).save(
      str(tmp_path / 'after_detection' / 'ckpt')))
  # 2. The whole model (RPN and box predictor heads too).
  tf.train.Checkpoint(model=gc_model).restore(stock_path).expect_partial()
  gc_keys = assert_restored(stock_keys, tf.train.Checkpoint(model=gc_model).save(
      str(tmp_path / 'after_full' / 'ckpt')))
  new_keys = gc_keys - stock_keys
  assert len(new_keys) == 4 and all('_proposal_features/' in k for k in new_keys)
  assert len(gc_variable_ids) == 4
  # The GC variables were left as they were.
  for before, variable in zip(gc_before, _gc_layer(gc_model).variables):
    np.testing.assert_array_equal(variable.numpy(), before)


@pytest.mark.parametrize('block, message', [
    ('num_heads: 3', r'C / bottleneck_ratio = 1024 / 4 = 256 must be divisible by '
                     r'num_heads=3'),
    ('num_layers: 0', r'num_layers: must be a positive integer, got 0'),
    ('bottleneck_ratio: -2', r'bottleneck_ratio: must be a positive integer, got -2'),
    ('attention_dropout: 1.5', r'attention_dropout: must be in \[0, 1\), got 1.5'),
    ('chunk_threshold: -1', r'chunk_threshold: must be >= 0'),
    ('source_block: "conv4_block9"',
     r"source_block: 'conv4_block9' is not a block of resnet_v1_50.*conv4_block2 .."
     r" conv4_block6"),
    ('source_block: "conv3_block2"', r"source_block: 'conv3_block2'"),
    ('bottleneck_ratio: 2', r'bottleneck_ratio: 2 does not match conv4_block6'),
])
def test_invalid_values_fail_at_build_time_naming_the_field(block, message, tmp_path):
  with pytest.raises(ValueError, match=message) as error:
    configs = _configs_from_text(_gc_text(block), tmp_path)
    model_builder.build(configs['model'], is_training=True)
  assert 'gc_detection.protos.global_context' in str(error.value)


def test_an_unknown_field_in_the_block_is_named(tmp_path):
  with pytest.raises(text_format.ParseError, match='num_hedas'):
    _configs_from_text(_gc_text('num_hedas: 4'), tmp_path)


def test_a_typo_in_the_type_lists_the_gc_types(tmp_path):
  configs = _configs_from_text(_gc_text(None, extractor='faster_rcnn_resnet50_gcc'),
                               tmp_path)
  with pytest.raises(ValueError) as error:
    model_builder.build(configs['model'], is_training=True)
  text = str(error.value)
  assert "'faster_rcnn_resnet50_gcc'" in text
  assert 'Did you mean faster_rcnn_resnet50_gc' in text
  for name in ('faster_rcnn_resnet50_gc', 'faster_rcnn_resnet101_gc',
               'faster_rcnn_resnet152_gc'):
    assert name in text


def test_a_gc_block_on_a_stock_extractor_is_an_error(tmp_path):
  text = open(BASELINE_R50).read() + (
      '\n[gc_detection.protos.global_context] { num_heads: 8 }\n')
  with pytest.raises(ValueError, match=r"faster_rcnn_resnet50_keras' is not a "
                                       r'global-context type'):
    _configs_from_text(text, tmp_path)


def test_the_block_survives_the_trainers_pipeline_rewrite(tmp_path):
  configs = _configs_from_text(_gc_text('num_heads: 8 num_layers: 2'), tmp_path)
  rewritten = config_util.create_pipeline_proto_from_configs(configs)
  from gc_detection.protos import global_context_pb2
  block = rewritten.Extensions[global_context_pb2.global_context]
  assert (block.num_heads, block.num_layers) == (8, 2)
  from object_detection import model_lib
  via_trainer_map = model_lib.MODEL_BUILD_UTIL_MAP[
      'create_pipeline_proto_from_configs'](configs)
  assert via_trainer_map.Extensions[global_context_pb2.global_context].num_heads == 8


def test_an_unbound_model_config_gets_defaults_with_a_warning(caplog):
  pipeline = pipeline_pb2.TrainEvalPipelineConfig()
  text_format.Merge(_gc_text('num_heads: 8'), pipeline)  # parsed by hand: unbound
  model_config = pipeline_pb2.TrainEvalPipelineConfig()
  model_config.CopyFrom(pipeline)
  model = model_builder.build(model_config.model, is_training=False)
  assert _gc_layer(model).num_heads == 4
  assert 'od_api.bind(pipeline)' in caplog.text
  od_api.bind(pipeline)
  assert _gc_layer(model_builder.build(pipeline.model, is_training=False)).num_heads == 8


def test_mask_rcnn_with_the_gc_extractor_trains_a_step():
  path = os.path.join(CONFIG_DIR, 'mask_rcnn_resnet50_v1_gc_600x1024_coco.config')
  configs = _small(config_util.get_configs_from_pipeline_file(path))
  model = model_builder.build(configs['model'], is_training=True)
  assert isinstance(model._feature_extractor,  # pylint: disable=protected-access
                    gc_extractors.FasterRCNNResnet50GCKerasFeatureExtractor)
  boxes = tf.constant([[0.1, 0.1, 0.6, 0.5]], tf.float32)
  masks = np.zeros((1, IMAGE_SIZE, IMAGE_SIZE), np.float32)
  masks[0, 6:38, 6:32] = 1.0
  model.provide_groundtruth(
      groundtruth_boxes_list=[boxes],
      groundtruth_classes_list=[tf.one_hot([3], 90)],
      groundtruth_masks_list=[tf.constant(masks)])
  optimizer = tf.keras.optimizers.SGD(1e-4)
  with tf.GradientTape() as tape:
    predictions, shapes = _predict(model)
    losses = model.loss(predictions, shapes)
    total = tf.add_n(list(losses.values()))
  variables = model.trainable_variables
  gradients = tape.gradient(total, variables)
  optimizer.apply_gradients(zip(gradients, variables))
  assert 'Loss/BoxClassifierLoss/mask_loss' in losses
  assert np.isfinite(total.numpy())
  gc_gradients = [g for g, v in zip(gradients, variables) if 'global_context' in v.name]
  assert len(gc_gradients) == 4 and all(
      g is not None and np.any(g.numpy()) for g in gc_gradients)


def test_registering_twice_is_harmless():
  gc_detection.register()
  gc_detection.register()
  factory = model_builder.FASTER_RCNN_KERAS_FEATURE_EXTRACTOR_CLASS_MAP[
      'faster_rcnn_resnet50_gc']
  builder = model_builder.META_ARCH_BUILDER_MAP['faster_rcnn']
  gc_detection.register()
  assert model_builder.FASTER_RCNN_KERAS_FEATURE_EXTRACTOR_CLASS_MAP[
      'faster_rcnn_resnet50_gc'] is factory
  assert model_builder.META_ARCH_BUILDER_MAP['faster_rcnn'] is builder
  assert not getattr(builder.__wrapped__, '_gc_detection_wrapped', False)


def test_the_start_up_hook_watches_exactly_the_patched_modules():
  assert startup_hook.touch_points.TRIGGER_MODULES == {
      point.module for point in touch_points.TOUCH_POINTS} | {touch_points.PIPELINE_PROTO_MODULE}


def test_registration_is_automatic_and_can_be_switched_off():
  code = ('from object_detection.builders import model_builder\n'
          'print("faster_rcnn_resnet50_gc" in '
          'model_builder.FASTER_RCNN_KERAS_FEATURE_EXTRACTOR_CLASS_MAP)\n')
  on = run_python(code)
  assert on.returncode == 0, on.stderr
  assert on.stdout.strip() == 'True'
  env = dict(os.environ, GC_DETECTION_AUTOREGISTER='0')
  import subprocess
  import sys
  off = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                       env=env, cwd=REPO_ROOT)
  assert off.returncode == 0, off.stderr
  assert off.stdout.strip() == 'False'
