"""The stock trainer on more than one worker or device trains the GC model alike.

RetinaNet + GC (it has no random sampling in its loss, unlike Faster R-CNN's
proposal sampler), fine-tuned in full from one generated checkpoint, on a
TFRecord whose examples are all the same image: every run starts from the
same weights and sees the same global batch whatever the sharding, so the
loss after the stock trainer's block of 100 steps must agree between

- one process on one device (the reference),
- `model_main_tf2 --num_workers=2`: MultiWorkerMirroredStrategy, two
  processes on 127.0.0.1 with TF_CONFIG,
- MirroredStrategy over two logical CPU devices in one process (the stock
  train_loop run under the strategy's scope).

A minute or two per run on 2 cores.
"""
import json
import os
import socket
import subprocess
import sys

import numpy as np
from object_detection.utils import config_util
import pytest
import tensorflow as tf

from conftest import REPO_ROOT
import tiny_configs
from gc_detection import atomic_files
from gc_detection.data import shapes
from gc_detection.data import tf_example

SIZE = 160
GLOBAL_BATCH = 2
STEPS = 100  # model_main_tf2 trains in blocks of 100 steps
RETINANET_GC = 'ssd_resnet50_v1_fpn_gc_640x640_coco.config'


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for sock in sockets:
    sock.bind(('127.0.0.1', 0))
  ports = [sock.getsockname()[1] for sock in sockets]
  for sock in sockets:
    sock.close()
  return ports


def _losses(model_dir):
  """{step: Loss/total_loss} from the trainer's summaries in model_dir/train."""
  losses = {}
  for path in tf.io.gfile.glob(os.path.join(model_dir, 'train', 'events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == 'Loss/total_loss':
          losses[event.step] = float(tf.make_ndarray(value.tensor))
  return losses


def _final_weights(model_dir):
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(model_dir))
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
          if name.startswith('model/') and 'OPTIMIZER_SLOT' not in name}


@pytest.fixture(scope='module')
def pipeline(tmp_path_factory):
  """A tiny RetinaNet + GC config fine-tuning in full from a generated checkpoint."""
  work_dir = tmp_path_factory.mktemp('multi_worker')
  # The OD API splits the input between workers by file: one shard each.
  records = [str(work_dir / f'train-{shard}-of-2.tfrecord') for shard in range(2)]
  example = shapes.generate(seed=5, count=1, height=SIZE, width=SIZE, max_boxes=2)
  for record in records:
    tf_example.write_tfrecord(record, example * 8)
  label_map = str(work_dir / 'label_map.pbtxt')
  atomic_files.write_text(label_map, tf_example.label_map_text(shapes.SHAPE_COLOURS))
  configs = tiny_configs.configs(RETINANET_GC, SIZE, work_dir)
  configs = config_util.merge_external_params_with_configs(configs, kwargs_dict={
      'batch_size': GLOBAL_BATCH, 'num_classes': len(shapes.SHAPE_COLOURS),
      'train_input_path': records, 'eval_input_path': records[0],
      'label_map_path': label_map})
  model = tiny_configs.built_model(configs, SIZE)
  start = tf.train.Checkpoint(model=model).save(str(work_dir / 'start' / 'ckpt'))
  train_config = configs['train_config']
  train_config.ClearField('data_augmentation_options')
  train_config.fine_tune_checkpoint = start
  train_config.fine_tune_checkpoint_type = 'full'
  optimizer = train_config.optimizer
  optimizer.ClearField('momentum_optimizer')
  optimizer.momentum_optimizer.momentum_optimizer_value = 0.9
  optimizer.momentum_optimizer.learning_rate.constant_learning_rate.learning_rate = 1e-3
  optimizer.use_moving_average = False
  config_util.save_pipeline_config(
      config_util.create_pipeline_proto_from_configs(configs), str(work_dir))
  return str(work_dir / 'pipeline.config'), work_dir


def _trainer_command(config, model_dir, *flags):
  return [sys.executable, '-m', 'object_detection.model_main_tf2',
          f'--pipeline_config_path={config}', f'--model_dir={model_dir}',
          f'--num_train_steps={STEPS}', f'--checkpoint_every_n={STEPS}', *flags]


@pytest.fixture(scope='module')
def single_process(pipeline):
  config, work_dir = pipeline
  model_dir = str(work_dir / 'single')
  result = subprocess.run(_trainer_command(config, model_dir), capture_output=True,
                          text=True, cwd=REPO_ROOT, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  return model_dir


def _assert_same_training(model_dir, reference_dir):
  losses, reference = _losses(model_dir), _losses(reference_dir)
  assert STEPS in losses and STEPS in reference, (losses, reference)
  assert np.isfinite(reference[STEPS])
  print(f'{model_dir}: loss at step {STEPS} {losses[STEPS]:.7f}, single process '
        f'{reference[STEPS]:.7f}, relative difference '
        f'{abs(losses[STEPS] - reference[STEPS]) / abs(reference[STEPS]):.1e}')
  assert losses[STEPS] == pytest.approx(reference[STEPS], rel=1e-3)
  weights, reference_weights = _final_weights(model_dir), _final_weights(reference_dir)
  assert set(weights) == set(reference_weights) and len(weights) > 300
  moved, differences, updates = 0, [], []
  start = tf.train.load_checkpoint(os.path.join(reference_dir, 'ckpt-1'))  # step 0
  for name, value in reference_weights.items():
    # Per tensor, not per element: summation order differs between one and two
    # replicas, and momentum carries it along: a weight near zero can differ
    # by 20% of itself (1e-5), a small tensor by 0.15% of its norm.
    difference = np.linalg.norm(weights[name] - value)
    update = np.linalg.norm(value - start.get_tensor(name))
    assert difference <= 1e-2 * np.linalg.norm(value) + 1e-5, name
    differences.append(difference)
    updates.append(update)
    moved += update > 0
  # Over the whole model, the runs made the same update to within 1%; a wrong
  # gradient scale (summed instead of averaged over replicas) misses by ~100%.
  assert np.linalg.norm(differences) <= 1e-2 * np.linalg.norm(updates)
  assert moved > 100  # the runs trained, not just restored


def test_multi_worker_mirrored_strategy_two_processes(pipeline, single_process):
  config, work_dir = pipeline
  model_dir = str(work_dir / 'multi_worker')
  workers = [f'127.0.0.1:{port}' for port in _free_ports(2)]
  processes = []
  for index in range(2):
    tf_config = {'cluster': {'worker': workers}, 'task': {'type': 'worker', 'index': index}}
    processes.append(subprocess.Popen(
        _trainer_command(config, model_dir, '--num_workers=2'), cwd=REPO_ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, TF_CONFIG=json.dumps(tf_config))))
  outputs = [process.communicate(timeout=1200) for process in processes]
  codes = [process.returncode for process in processes]
  assert codes == [0, 0], '\n'.join(
      f'worker {index} exited {code}:\n{stderr[-3000:]}'
      for index, (code, (_, stderr)) in enumerate(zip(codes, outputs)))
  # The chief (worker 0) wrote the checkpoints; worker 1's temporary ones are gone.
  state = tf.train.get_checkpoint_state(model_dir)
  assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
      'ckpt-1', 'ckpt-2']
  assert not tf.io.gfile.glob(os.path.join(model_dir, 'workertemp_*', 'ckpt-*'))
  _assert_same_training(model_dir, single_process)


MIRRORED_DRIVER = '''
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from object_detection import model_lib_v2
strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
assert strategy.num_replicas_in_sync == 2
with strategy.scope():
  model_lib_v2.train_loop(pipeline_config_path=sys.argv[1], model_dir=sys.argv[2],
                          train_steps=int(sys.argv[3]), checkpoint_every_n=int(sys.argv[3]))
'''


def test_mirrored_strategy_two_logical_cpus(pipeline, single_process):
  config, work_dir = pipeline
  model_dir = str(work_dir / 'mirrored')
  result = subprocess.run([sys.executable, '-c', MIRRORED_DRIVER, config, model_dir,
                           str(STEPS)], capture_output=True, text=True, cwd=REPO_ROOT,
                          timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  _assert_same_training(model_dir, single_process)
