"""The paper's initialisation of the module from a ResNet bottleneck block.

The source of truth is the model that wrote the fine-tune checkpoint: its
block's 1x1 convolutions and frozen batch norms, read by layer name and folded
here in float64 NumPy, independently of gc_detection's folding code.
"""
import logging
import os

import numpy as np
from object_detection import model_lib_v2
from object_detection.protos import train_pb2
from object_detection.utils import config_util
import pytest
import tensorflow as tf

from conftest import REPO_ROOT
import tiny_configs

CONFIG_DIR = os.path.join(REPO_ROOT, 'pipeline_configs')
FRCNN = ('faster_rcnn_resnet50_v1_600x1024_coco.config',
         'faster_rcnn_resnet50_v1_gc_600x1024_coco.config', 64)
RETINANET = ('ssd_resnet50_v1_fpn_640x640_coco.config',
             'ssd_resnet50_v1_fpn_gc_640x640_coco.config', 160)


_configs = tiny_configs.configs


_built = tiny_configs.built_model


_randomise_block = tiny_configs.randomise_bottleneck_block
_expected = tiny_configs.expected_bottleneck_copy


def _assert_copied(layer, expected):
  blocks = [{name: variable.numpy() for name, variable in layer.layer_weights(index).items()}
            for index in range(layer.num_layers)]
  assert len(blocks) == layer.num_layers
  tiny_configs.assert_bottleneck_copy(blocks, expected)


def _fine_tune(model, path, checkpoint_type):
  model_lib_v2.load_fine_tune_checkpoint(
      model, path, checkpoint_type, train_pb2.CheckpointVersion.V2,
      run_model_on_dummy_input=False, input_dataset=None,
      unpad_groundtruth_tensors=False)


@pytest.mark.parametrize('case, checkpoint_type, block, source', [
    (FRCNN, 'detection', 'initialization: BOTTLENECK', 'conv4_block6'),
    (FRCNN, 'detection', 'fold_batch_norm: false num_layers: 2 num_heads: 8 '
                         'source_block: "conv4_block3"', 'conv4_block3'),
    (FRCNN, 'classification', '', 'conv4_block6'),
    (RETINANET, 'detection', '', 'conv5_block3'),
    (RETINANET, 'classification', 'source_block: "conv5_block2"', 'conv5_block2'),
], ids=['frcnn-detection-folded', 'frcnn-unfolded-2x8-block3',
        'frcnn-classification', 'retinanet-detection', 'retinanet-classification'])
def test_after_a_fine_tune_restore_the_module_is_the_source_block(
    case, checkpoint_type, block, source, tmp_path):
  stock_config, gc_config, size = case
  stock = _built(_configs(stock_config, size, tmp_path), size)
  backbone = stock._feature_extractor.classification_backbone  # pylint: disable=protected-access
  _randomise_block(backbone, source, seed=len(source))
  if checkpoint_type == 'classification':
    path = tf.train.Checkpoint(feature_extractor=backbone).save(str(tmp_path / 'c' / 'ckpt'))
  else:
    path = tf.train.Checkpoint(model=stock).save(str(tmp_path / 'd' / 'ckpt'))
  expected = _expected(backbone, source, fold='fold_batch_norm: false' not in block)

  gc_model = _built(_configs(gc_config, size, tmp_path, block), size)
  layer = gc_model._feature_extractor.global_context  # pylint: disable=protected-access
  with pytest.raises(AssertionError):
    _assert_copied(layer, expected)  # Glorot before the restore
  _fine_tune(gc_model, path, checkpoint_type)
  _assert_copied(layer, expected)


@pytest.mark.parametrize('initialization', ['GLOROT', 'ZERO_OUTPUT'])
def test_other_initializations_keep_their_start(initialization, tmp_path):
  stock_config, gc_config, size = FRCNN
  stock = _built(_configs(stock_config, size, tmp_path), size)
  path = tf.train.Checkpoint(model=stock).save(str(tmp_path / 'd' / 'ckpt'))
  gc_model = _built(_configs(gc_config, size, tmp_path,
                             f'initialization: {initialization}'), size)
  layer = gc_model._feature_extractor.global_context  # pylint: disable=protected-access
  before = [v.numpy().copy() for v in layer.variables]
  _fine_tune(gc_model, path, 'detection')
  for value, variable in zip(before, layer.variables):
    np.testing.assert_array_equal(variable.numpy(), value)
  output_kernel = layer.layer_weights(0)['output_kernel'].numpy()
  assert (np.all(output_kernel == 0)) == (initialization == 'ZERO_OUTPUT')


def test_a_gc_detection_checkpoint_restores_the_trained_module(tmp_path):
  stock_config, gc_config, size = FRCNN
  trained = _built(_configs(gc_config, size, tmp_path), size)
  layer = trained._feature_extractor.global_context  # pylint: disable=protected-access
  for variable in layer.variables:
    variable.assign(np.random.default_rng(1).normal(size=variable.shape))
  path = tf.train.Checkpoint(model=trained).save(str(tmp_path / 'gc' / 'ckpt'))
  del stock_config
  fresh = _built(_configs(gc_config, size, tmp_path), size)
  _fine_tune(fresh, path, 'detection')
  for want, got in zip(layer.variables,
                       fresh._feature_extractor.global_context.variables):  # pylint: disable=protected-access
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_resuming_from_model_dir_keeps_the_checkpointed_module(tmp_path, caplog):
  stock_config, gc_config, size = FRCNN
  stock = _built(_configs(stock_config, size, tmp_path), size)
  fine_tune = tf.train.Checkpoint(model=stock).save(str(tmp_path / 'd' / 'ckpt'))
  config = tiny_configs.faster_rcnn_gc_training_config(tmp_path, fine_tune)

  # A model_dir whose latest checkpoint (step 100) holds a trained module.
  del gc_config
  resumed = _built(config_util.get_configs_from_pipeline_file(config), size)
  layer = resumed._feature_extractor.global_context  # pylint: disable=protected-access
  for seed, variable in enumerate(layer.variables):
    variable.assign(np.random.default_rng(seed).normal(size=variable.shape))
  model_dir = tmp_path / 'model'
  tf.train.Checkpoint(step=tf.Variable(100, dtype=tf.int64), model=resumed).save(
      str(model_dir / 'ckpt'))

  caplog.set_level(logging.INFO)
  # At learning rate 0 the next 100 steps leave every weight where it starts.
  model_lib_v2.train_loop(pipeline_config_path=config, model_dir=str(model_dir),
                          train_steps=200, checkpoint_every_n=100,
                          record_summaries=False)
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(model_dir)))
  assert reader.get_tensor('step/.ATTRIBUTES/VARIABLE_VALUE') == 200
  saved = {key.split('/')[-3]: reader.get_tensor(key)
           for key in reader.get_variable_to_shape_map()
           if '.S' in key and '.OPTIMIZER_SLOT' not in key and
           key.startswith('model/_feature_extractor_for_proposal')}
  assert len(saved) == 4
  for variable in layer.variables:
    name = variable.name.split('/', 1)[1][:-2].replace('/', '.S')
    np.testing.assert_array_equal(saved[name], variable.numpy(), err_msg=name)
  assert 'training resumes from' in caplog.text
  assert 'initialised from conv4_block6' not in caplog.text
