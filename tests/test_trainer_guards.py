"""The stock trainer with gc_detection: no hang on empty input, no lost weights,
one trainer per model_dir.

Each case first reproduces what a user saw before the fix (issue 17):

- a 0-byte TFRecord made `model_main_tf2` spin forever at full CPU; a
  directory or a text file as `input_path` passed pre-flight and failed at
  step 1;
- `--num_train_steps=100` with the default `--checkpoint_every_n=1000` left
  only the step-0 checkpoint, without model weights, and exited 0;
- two trainers on one model_dir ran side by side, replacing each other's
  checkpoints.

The trainer runs are the OD API's own `python -m object_detection.model_main_tf2`
on a tiny Faster R-CNN + GC (64 px, generated data, no fine_tune_checkpoint:
the case where the step-0 checkpoint holds no weights).
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
from object_detection.builders import model_builder
from object_detection.utils import config_util
import pytest
import tensorflow as tf

from conftest import REPO_ROOT
from conftest import run_script
import stock_trainer
import tiny_configs
from gc_detection.data import shapes
from gc_detection.data import tf_example
from gc_detection.od_api.training import final_checkpoint
from gc_detection.od_api.training import model_dir_lock
from gc_detection.od_api.training import preflight

STEP_KEY = final_checkpoint.STEP_KEY


@pytest.fixture(scope='module')
def training_config(tmp_path_factory):
  """A tiny GC Faster R-CNN pipeline.config without a fine_tune_checkpoint."""
  work_dir = tmp_path_factory.mktemp('guards')
  return tiny_configs.faster_rcnn_gc_training_config(work_dir, '', learning_rate=1e-4)


def _trainer(config, model_dir, *flags, steps_per_iteration=None):
  return stock_trainer.command(config, model_dir, *flags,
                               steps_per_iteration=steps_per_iteration)


def _run(args, timeout=600):
  return subprocess.run(args, capture_output=True, text=True, cwd=REPO_ROOT,
                        timeout=timeout)


def _with_input(config, tmp_path, input_path, shuffle=None):
  configs = config_util.get_configs_from_pipeline_file(config)
  reader = configs['train_input_config']
  reader.tf_record_input_reader.input_path[:] = (
      input_path if isinstance(input_path, list) else [input_path])
  if shuffle is not None:
    reader.shuffle = shuffle
  return configs


# ---------------------------------------------------------------- inputs --


def test_an_empty_tfrecord_is_refused_before_training(training_config, tmp_path):
  empty = tmp_path / 'empty.tfrecord'
  empty.write_bytes(b'')
  with pytest.raises(preflight.PipelineFileError) as raised:
    preflight.check_training_pipeline(_with_input(training_config, tmp_path, str(empty)))
  message = str(raised.value)
  assert message.startswith('train_input_reader.tf_record_input_reader.input_path: ')
  assert repr(str(empty)) in message and 'hold no record' in message
  assert 'wait for input forever' in message


@pytest.mark.parametrize('kind', ['directory', 'text', 'not_an_example'])
def test_a_file_that_is_not_a_tfrecord_of_examples_is_named(training_config, tmp_path,
                                                            kind):
  if kind == 'directory':
    path = tmp_path / 'records'
    path.mkdir()
    expected = 'is a directory'
  elif kind == 'text':
    path = tmp_path / 'train.tfrecord'
    path.write_text('image,label\ncat.jpg,1\n' * 20)
    expected = 'is not a TFRecord file'
  else:
    path = tmp_path / 'train.tfrecord'
    with tf.io.TFRecordWriter(str(path)) as writer:
      writer.write(b'\x08\x96\x01 not an Example')
    expected = 'is not a tf.train.Example with an image/encoded feature'
  with pytest.raises(preflight.PipelineFileError) as raised:
    preflight.check_training_pipeline(_with_input(training_config, tmp_path, str(path)))
  assert 'train_input_reader.tf_record_input_reader.input_path' in str(raised.value)
  assert repr(str(path)) in str(raised.value) and expected in str(raised.value)


def test_empty_shards_among_full_ones_pass(training_config, tmp_path):
  """create_coco_tf_record writes a fixed number of shards, some maybe empty."""
  configs = config_util.get_configs_from_pipeline_file(training_config)
  full = configs['train_input_config'].tf_record_input_reader.input_path[0]
  for index in range(3):
    (tmp_path / f'train-0000{index}-of-00003').write_bytes(b'')
  shards = sorted(str(p) for p in tmp_path.glob('train-*')) + [full]
  preflight.check_training_pipeline(_with_input(training_config, tmp_path, shards))


def test_a_worker_left_with_only_empty_shards_is_named(training_config, tmp_path):
  configs = config_util.get_configs_from_pipeline_file(training_config)
  full = configs['train_input_config'].tf_record_input_reader.input_path[0]
  empty = tmp_path / 'empty.tfrecord'
  empty.write_bytes(b'')
  files = [full, str(empty)]  # without shuffling, worker 1 reads files[1::2]
  unshuffled = _with_input(training_config, tmp_path, files, shuffle=False)
  with pytest.raises(preflight.PipelineFileError,
                     match='worker 1 of 2 would read only empty files'):
    preflight.check_training_pipeline(unshuffled, num_input_pipelines=2)
  preflight.check_training_pipeline(unshuffled, num_input_pipelines=1)


def test_the_stock_trainer_stops_at_once_on_an_empty_tfrecord(training_config, tmp_path):
  configs = _with_input(training_config, tmp_path, str(tmp_path / 'empty.tfrecord'))
  (tmp_path / 'empty.tfrecord').write_bytes(b'')
  config_util.save_pipeline_config(
      config_util.create_pipeline_proto_from_configs(configs), str(tmp_path))
  result = run_script('train.sh', f'--pipeline_config_path={tmp_path / "pipeline.config"}',
                      f'--model_dir={tmp_path / "model"}', timeout=300)
  assert result.returncode != 0
  assert 'PipelineFileError: train_input_reader.tf_record_input_reader.input_path' in (
      result.stderr)
  assert 'hold no record' in result.stderr


# ------------------------------------------------------ final checkpoint --


def test_a_run_shorter_than_checkpoint_every_n_keeps_its_weights(training_config,
                                                                  tmp_path):
  model_dir = tmp_path / 'model'
  # 10 steps in iterations of 10 (tests/stock_trainer.py), the default
  # checkpoint_every_n of 1000.
  result = _run(_trainer(training_config, model_dir, '--num_train_steps=10',
                         steps_per_iteration=10))
  assert result.returncode == 0, result.stderr[-3000:]
  latest = tf.train.latest_checkpoint(str(model_dir))
  reader = tf.train.load_checkpoint(latest)
  assert reader.get_tensor(STEP_KEY) == 10
  # The step-0 checkpoint has no model weights; the final one has them all,
  # as the reference model built from the config has them.
  model = model_builder.build(
      config_util.get_configs_from_pipeline_file(training_config)['model'],
      is_training=False)
  image = tf.zeros([1, 64, 64, 3])
  model.predict(*model.preprocess(image))
  status = tf.train.Checkpoint(model=model).restore(latest)
  status.expect_partial().assert_existing_objects_matched()
  for variable in model.trainable_variables:
    assert np.all(np.isfinite(variable.numpy())), variable.name
  assert 'training ended at step 10' in result.stderr

  # Resuming continues the numbering: nothing is overwritten.
  state = tf.train.get_checkpoint_state(str(model_dir))
  before = list(state.all_model_checkpoint_paths)
  result = _run(_trainer(training_config, model_dir, '--num_train_steps=20',
                         steps_per_iteration=10))
  assert result.returncode == 0, result.stderr[-3000:]
  after = list(tf.train.get_checkpoint_state(str(model_dir)).all_model_checkpoint_paths)
  assert after[:len(before)] == before and len(after) == len(before) + 1
  numbers = [int(path.rsplit('-', 1)[1]) for path in after]
  assert numbers == sorted(set(numbers)), after
  assert tf.train.load_checkpoint(after[-1]).get_tensor(STEP_KEY) == 20
  assert tf.train.load_checkpoint(before[-1]).get_tensor(STEP_KEY) == 10

  # The stock exporter accepts it (it failed with "Found N Python objects
  # that were not bound" on the weightless checkpoint).
  exported = tmp_path / 'exported'
  result = run_script('export.sh', f'--pipeline_config_path={training_config}',
                      f'--trained_checkpoint_dir={model_dir}',
                      f'--output_directory={exported}', timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert (exported / 'saved_model' / 'saved_model.pb').is_file()


# ------------------------------------------------------------------ lock --


def test_the_lock_names_its_holder_and_is_released_after_sigkill(tmp_path):
  model_dir = str(tmp_path / 'model')
  holder = subprocess.Popen(
      [sys.executable, '-c',
       'import sys, time\n'
       'from gc_detection.od_api.training import model_dir_lock\n'
       f'model_dir_lock.ModelDirLock({model_dir!r}).acquire()\n'
       'print("locked", flush=True)\n'
       'time.sleep(600)\n'], stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT)
  try:
    assert holder.stdout.readline().strip() == 'locked'
    with pytest.raises(model_dir_lock.ModelDirInUseError) as raised:
      model_dir_lock.ModelDirLock(model_dir).acquire()
    message = str(raised.value)
    assert f'--model_dir={model_dir} is in use' in message
    assert f'pid {holder.pid} on ' in message
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    with model_dir_lock.ModelDirLock(model_dir) as lock:  # the kernel released it
      held = json.loads(open(lock.path).read())
      assert held['pid'] == os.getpid()
    assert open(os.path.join(model_dir, model_dir_lock.LOCK_FILE)).read() == ''
  finally:
    if holder.poll() is None:
      holder.kill()


def test_a_second_stock_trainer_on_the_same_model_dir_is_refused(training_config,
                                                                  tmp_path):
  model_dir = tmp_path / 'model'
  lock_file = model_dir / model_dir_lock.LOCK_FILE
  first = subprocess.Popen(_trainer(training_config, model_dir, '--num_train_steps=100000'),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           cwd=REPO_ROOT, start_new_session=True)
  try:
    deadline = time.time() + 300
    while not (lock_file.exists() and lock_file.read_text()):
      assert first.poll() is None, first.stderr.read()[-3000:]
      assert time.time() < deadline, 'the first trainer never took the lock'
      time.sleep(0.5)
    second = _run(_trainer(training_config, model_dir, '--num_train_steps=100'),
                  timeout=300)
    assert second.returncode != 0
    assert 'ModelDirInUseError' in second.stderr
    assert f'--model_dir={model_dir} is in use' in second.stderr
    assert f'pid {first.pid} on ' in second.stderr
    assert 'model_main_tf2' in second.stderr  # the holder's command line
  finally:
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
