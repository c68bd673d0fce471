"""The GC segmentation experiment through Model Garden's own, unmodified programs.

`python -m official.vision.train` (train_and_eval) from a generated stock
ResNet-50 checkpoint on generated 64x64 data, a resume, then
`python -m official.vision.serving.export_saved_model` and serving in a fresh
process where gc_detection cannot be imported. References: the checkpoint's
own files, a NumPy pixel count of the evaluated predictions, and the Keras
model restored in this process.
"""
import os

import numpy as np
import pytest
import tensorflow as tf
import yaml

from official.core import exp_factory
from official.core import task_factory
from official.vision.dataloaders import tfexample_utils
from official.vision.modeling.backbones import resnet

from gc_detection.model_garden import registry  # pylint: disable=unused-import
from conftest import run_python
from conftest import serve_without_gc_detection
from conftest import summary_scalars

EXPERIMENT = 'seg_resnet50_fpn_gc_coco'
SIZE = 64
IGNORE = 255
INITIALISED = 'global-context module initialised from conv5_block3'

def _overrides(work_dir, train_steps):
  return {
      'task': {
          'init_checkpoint': os.path.join(work_dir, 'stock', 'ckpt-1'),
          'model': {'input_size': [SIZE, SIZE, 3],
                    'norm_activation': {'use_sync_bn': False}},
          'train_data': {'input_path': os.path.join(work_dir, 'train.tfrecord'),
                         'global_batch_size': 2, 'output_size': [SIZE, SIZE]},
          'validation_data': {'input_path': os.path.join(work_dir, 'val.tfrecord'),
                              'global_batch_size': 2, 'output_size': [SIZE, SIZE],
                              'resize_eval_groundtruth': True,
                              'groundtruth_padded_size': [], 'drop_remainder': True},
      },
      'trainer': {'train_steps': train_steps, 'validation_steps': 1,
                  'validation_interval': 2, 'steps_per_loop': 2,
                  'summary_interval': 2, 'checkpoint_interval': 2,
                  'optimizer_config': {'warmup': {'linear': {'warmup_steps': 1}}}},
  }


def _write_config(work_dir, train_steps):
  path = os.path.join(work_dir, f'override_{train_steps}.yaml')
  with open(path, 'w') as out:
    yaml.safe_dump(_overrides(work_dir, train_steps), out)
  return path


def _train(work_dir, model_dir, train_steps):
  result = run_python(['-m', 'official.vision.train', f'--experiment={EXPERIMENT}',
                       '--mode=train_and_eval', f'--model_dir={model_dir}',
                       f'--config_file={_write_config(work_dir, train_steps)}'],
                      timeout=900)
  assert result.returncode == 0, result.stderr[-4000:]
  return result.stderr


def _config(work_dir):
  config = exp_factory.get_exp_config(EXPERIMENT)
  config.override(_overrides(work_dir, 2), is_strict=True)
  return config


def _restored_model(work_dir, model_dir):
  config = _config(work_dir)
  task = task_factory.get_task(config.task)
  model = task.build_model()
  tf.train.Checkpoint(model=model).read(tf.train.latest_checkpoint(model_dir)).expect_partial()
  return task, model


def _pixel_count_miou(truth, prediction, num_classes):
  valid = truth != IGNORE
  ious = []
  for c in range(num_classes):
    in_truth, in_prediction = (truth == c) & valid, (prediction == c) & valid
    if in_truth.any():
      ious.append(np.sum(in_truth & in_prediction) / np.sum(in_truth | in_prediction))
  return float(np.mean(ious))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  work_dir = str(tmp_path_factory.mktemp('model_garden'))
  examples = [tfexample_utils.create_segmentation_test_example(SIZE, SIZE, 3)
              for _ in range(4)]
  tfexample_utils.dump_to_tfrecord(os.path.join(work_dir, 'train.tfrecord'), examples)
  tfexample_utils.dump_to_tfrecord(os.path.join(work_dir, 'val.tfrecord'), examples[:2])
  stock = resnet.ResNet(50, input_specs=tf.keras.layers.InputSpec(shape=[None, None, None, 3]))
  stock(tf.zeros([1, SIZE, SIZE, 3]))
  tf.train.Checkpoint(backbone=stock).save(os.path.join(work_dir, 'stock', 'ckpt'))
  model_dir = os.path.join(work_dir, 'model')
  log = _train(work_dir, model_dir, train_steps=2)
  return work_dir, model_dir, log, stock


def test_training_restores_the_stock_backbone_and_initialises_the_module(trained):
  work_dir, model_dir, log, stock = trained
  assert '18 stock backbone layers restored from' in log
  assert INITIALISED in log
  # Two steps moved the weights away from the checkpoint, but not far: the
  # stem convolution is still the restored one, not a fresh random one.
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(model_dir))
  stem = reader.get_tensor('backbone/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE')
  restored = stock.layers[1].kernel.numpy()
  assert np.abs(stem - restored).max() < 0.1 * np.abs(restored).max()
  assert np.corrcoef(stem.ravel(), restored.ravel())[0, 1] > 0.99


def test_evaluation_reports_the_four_metrics_of_the_predictions(trained):
  work_dir, model_dir, _, _ = trained
  scalars = summary_scalars(model_dir, 'validation')
  for name in ('mIoU', 'fwIoU', 'mACC', 'pACC', 'mean_iou'):
    assert name in scalars, sorted(scalars)
  task, model = _restored_model(work_dir, model_dir)
  features, labels = next(iter(task.build_inputs(_config(work_dir).task.validation_data)))
  logits = model(features, training=False)['logits']
  logits = tf.image.resize(logits, labels['masks'].shape[1:3], method='bilinear')
  prediction = tf.argmax(logits, -1).numpy()
  truth = labels['masks'][..., 0].numpy().astype(np.int64)
  truth[~labels['valid_masks'][..., 0].numpy()] = IGNORE
  expected = _pixel_count_miou(truth, prediction, task.task_config.model.num_classes)
  np.testing.assert_allclose(scalars['mIoU'], expected, atol=1e-6)


def test_a_resumed_run_keeps_its_trained_module(trained):
  work_dir, model_dir, _, _ = trained
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(model_dir))
  key = next(k for k in reader.get_variable_to_shape_map()
             if k.startswith('backbone/') and 'block_0.Sqkv_kernel/.ATTRIBUTES' in k)
  log = _train(work_dir, model_dir, train_steps=4)
  assert INITIALISED not in log
  assert 'stock backbone layers restored from' not in log
  resumed = tf.train.load_checkpoint(tf.train.latest_checkpoint(model_dir))
  assert tf.train.latest_checkpoint(model_dir).endswith('-4')
  # Two more steps from the trained module, not from a re-initialised one.
  assert np.abs(resumed.get_tensor(key) - reader.get_tensor(key)).max() < 0.05


def test_the_stock_exporter_serves_without_gc_detection(trained):
  work_dir, model_dir, _, _ = trained
  export_dir = os.path.join(work_dir, 'export')
  result = run_python(['-m', 'official.vision.serving.export_saved_model',
                       f'--experiment={EXPERIMENT}', f'--export_dir={export_dir}',
                       f'--checkpoint_path={tf.train.latest_checkpoint(model_dir)}',
                       '--batch_size=1', f'--input_image_size={SIZE},{SIZE}',
                       f'--config_file={_write_config(work_dir, 2)}'], timeout=900)
  assert result.returncode == 0, result.stderr[-4000:]
  images = np.random.default_rng(0).integers(0, 256, (1, SIZE, SIZE, 3), dtype=np.uint8)
  served = serve_without_gc_detection(os.path.join(export_dir, 'saved_model'), images,
                                      work_dir)
  _, model = _restored_model(work_dir, model_dir)
  normalised = (images.astype(np.float32) - np.array([123.675, 116.28, 103.53])) / np.array(
      [58.395, 57.12, 57.375])
  logits = model(tf.constant(normalised, tf.float32), training=False)['logits']
  expected = tf.image.resize(logits, [SIZE, SIZE], method='bilinear').numpy()
  np.testing.assert_allclose(served['logits'], expected, rtol=1e-3, atol=1e-3)
