"""official.vision's RetinaNet and Mask R-CNN with the resnet_gc backbone.

Each registered experiment builds its stock detector around the GC backbone,
reads a generated stock ResNet-50 checkpoint through gc_detection's
initialize (every stock backbone variable equal to the checkpoint's), and
trains one step on generated COCO-style data through the stock task's own
input pipeline, loss and train_step: the loss is finite and the module's
weights move.
"""
import os

import numpy as np
import pytest
import tensorflow as tf

from official.core import exp_factory
from official.core import task_factory
from official.vision.dataloaders import tfexample_utils
from official.vision.modeling.backbones import resnet

from gc_detection.model_garden import detection_experiments
from gc_detection.model_garden import registry  # pylint: disable=unused-import
from gc_detection.model_garden import resnet_gc

SIZE = 128


@pytest.fixture(scope='module')
def data(tmp_path_factory):
  work_dir = tmp_path_factory.mktemp('detectors')
  examples = [tfexample_utils.create_detection_test_example(SIZE, SIZE, 3, 2)
              for _ in range(2)]
  records = str(work_dir / 'train.tfrecord')
  tfexample_utils.dump_to_tfrecord(records, examples)
  stock = resnet.ResNet(50, input_specs=tf.keras.layers.InputSpec(shape=[None, None, None, 3]))
  stock(tf.zeros([1, 64, 64, 3]))
  checkpoint = tf.train.Checkpoint(backbone=stock).save(str(work_dir / 'stock' / 'ckpt'))
  return records, checkpoint, stock


@pytest.mark.parametrize('experiment', ['retinanet_resnet50_fpn_gc_coco',
                                        'maskrcnn_resnet50_fpn_gc_coco'])
def test_the_detector_restores_the_stock_backbone_and_trains_a_step(data, experiment):
  records, checkpoint, stock = data
  config = exp_factory.get_exp_config(experiment)
  stock_name = experiment.replace('resnet50_fpn_gc_coco', 'resnetfpn_coco')
  # Everything but the backbone is the stock experiment's.
  stock_task = exp_factory.get_exp_config(stock_name).task.as_dict()
  gc_task = config.task.as_dict()
  del stock_task['model']['backbone'], gc_task['model']['backbone']
  assert gc_task == stock_task
  config.override({'task': {
      'init_checkpoint': checkpoint, 'init_checkpoint_modules': 'backbone',
      'model': {'input_size': [SIZE, SIZE, 3], 'num_classes': 3,
                'norm_activation': {'use_sync_bn': False}},
      'train_data': {'input_path': records, 'global_batch_size': 2},
      'annotation_file': None}}, is_strict=False)
  if 'maskrcnn' in experiment:
    config.override({'task': {'model': {'include_mask': True}}}, is_strict=False)
  task = task_factory.get_task(config.task)
  assert isinstance(task, (detection_experiments.RetinaNetTask,
                           detection_experiments.MaskRCNNTask))
  model = task.build_model()
  assert isinstance(model.backbone, resnet_gc.ResNetGlobalContext)
  task.initialize(model)
  for stock_layer, gc_layer in zip([l for l in stock.layers if l.weights],
                                   model.backbone.stock_layers()):
    for expected, actual in zip(stock_layer.weights, gc_layer.weights):
      np.testing.assert_array_equal(expected.numpy(), actual.numpy())
  module_before = [w.numpy() for w in model.backbone.global_context.weights]
  optimizer = tf.keras.optimizers.SGD(0.01)
  inputs = next(iter(task.build_inputs(config.task.train_data)))
  logs = task.train_step(inputs, model, optimizer, metrics=task.build_metrics())
  assert np.isfinite(float(logs['loss']))
  moved = [np.abs(before - after.numpy()).max()
           for before, after in zip(module_before, model.backbone.global_context.weights)]
  assert max(moved) > 0
