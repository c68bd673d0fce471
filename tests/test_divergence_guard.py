"""A non-finite loss stops the stock trainer before the update, naming step and terms."""
import os
import re

from google.protobuf import text_format
import numpy as np
from object_detection.protos import pipeline_pb2
import pytest
import tensorflow as tf

from conftest import run_script
import tiny_configs
from gc_detection.od_api.training import divergence_guard


def _guarded_step(losses):
  """Runs guard_losses in a tf.function on {name: python float} at step 41."""
  step = tf.Variable(41, dtype=tf.int64)

  @tf.function
  def run():
    tensors = {name: tf.constant(value, tf.float32) for name, value in losses.items()}
    return divergence_guard.guard_losses(tensors, step)
  return run()


def test_finite_losses_pass_unchanged():
  losses = {'Loss/a': 1.5, 'Loss/total_loss': 2.25}
  assert {k: v.numpy() for k, v in _guarded_step(losses).items()} == losses


@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -float('inf')])
def test_a_non_finite_term_raises_naming_step_and_every_term(bad):
  losses = {'Loss/RPNLoss/localization_loss': 0.5, 'Loss/RPNLoss/objectness_loss': bad,
            'Loss/total_loss': bad}
  with pytest.raises(tf.errors.InvalidArgumentError) as raised:
    _guarded_step(losses)
  assert divergence_guard.is_divergence(raised.value)
  step, parsed = divergence_guard.parse_divergence(raised.value)
  assert step == 41
  assert set(parsed) == set(losses)
  for name, value in losses.items():
    assert float(parsed[name]) == pytest.approx(value, nan_ok=True), name
  assert not divergence_guard.is_divergence(tf.errors.InvalidArgumentError(
      None, None, 'some other assertion'))


def _save_checkpoints(model_dir, values):
  weight = tf.Variable(0.0)
  # The trainer's layout: model weights under "model/".
  manager = tf.train.CheckpointManager(
      tf.train.Checkpoint(model=tf.train.Checkpoint(weight=weight)), model_dir,
      max_to_keep=10)
  for value in values:
    weight.assign(value)
    manager.save()
  return [os.path.join(model_dir, f'ckpt-{i + 1}') for i in range(len(values))]


def test_newest_finite_checkpoint_becomes_the_latest(tmp_path):
  model_dir = str(tmp_path)
  paths = _save_checkpoints(model_dir, [1.0, 2.0, float('nan'), float('inf')])
  latest, skipped = divergence_guard.newest_finite_checkpoint(model_dir)
  assert latest == paths[1] and skipped == [paths[3], paths[2]]
  assert tf.train.latest_checkpoint(model_dir) == paths[1]
  assert list(tf.train.get_checkpoint_state(model_dir).all_model_checkpoint_paths) == (
      paths[:2])
  for path in paths:  # nothing deleted
    assert os.path.exists(path + '.index')
  # Already finite: nothing changes.
  assert divergence_guard.newest_finite_checkpoint(model_dir) == (paths[1], [])


def test_no_finite_checkpoint(tmp_path):
  _save_checkpoints(str(tmp_path), [float('nan')])
  assert divergence_guard.newest_finite_checkpoint(str(tmp_path))[0] is None
  assert divergence_guard.newest_finite_checkpoint(str(tmp_path / 'empty')) == (None, [])


def test_a_checkpoint_without_model_weights_is_not_called_finite(tmp_path):
  """The stock step-0 checkpoint of an unbuilt model holds only the step."""
  model_dir = str(tmp_path)
  step = tf.Variable(0, dtype=tf.int64)
  tf.train.CheckpointManager(tf.train.Checkpoint(step=step, model=tf.train.Checkpoint()),
                             model_dir, max_to_keep=5).save()
  assert divergence_guard.newest_finite_checkpoint(model_dir) == (None, [])
  error = tf.errors.InvalidArgumentError(None, None, (
      f'assertion failed: [{divergence_guard.MARKER}] [completed steps] [7] '
      '[Loss/total_loss] [nan]'))
  message = str(divergence_guard.diverged_error(error, model_dir))
  assert 'holds finite weights' not in message
  assert f'{model_dir} holds no checkpoint with finite model weights' in message


def test_stock_trainer_stops_at_the_first_non_finite_loss(tmp_path):
  """model_main_tf2 with a learning rate that blows the weights up."""
  source_size = 64
  stock = tiny_configs.built_model(
      tiny_configs.configs(tiny_configs.FRCNN_R50, source_size, tmp_path), source_size)
  fine_tune = tf.train.Checkpoint(model=stock).save(str(tmp_path / 'zoo' / 'ckpt'))
  config = tiny_configs.faster_rcnn_gc_training_config(tmp_path, fine_tune)
  pipeline = text_format.Parse(open(config).read(), pipeline_pb2.TrainEvalPipelineConfig())
  pipeline.train_config.num_steps = 100
  optimizer = pipeline.train_config.optimizer
  optimizer.ClearField('adam_optimizer')
  optimizer.momentum_optimizer.momentum_optimizer_value = 0.9
  optimizer.momentum_optimizer.learning_rate.constant_learning_rate.learning_rate = 1e12
  optimizer.use_moving_average = False
  text = text_format.MessageToString(pipeline)
  with open(config, 'w') as output:
    output.write(text)
  model_dir = str(tmp_path / 'model')

  result = run_script('train.sh', f'--pipeline_config_path={config}',
                      f'--model_dir={model_dir}', '--checkpoint_every_n=1', timeout=900)
  assert result.returncode != 0
  match = re.search(r'TrainingDivergedError: Training diverged: step (\d+) \(after '
                    r'(\d+) completed steps\) has a non-finite loss: (.*?)\. The update',
                    result.stderr)
  assert match, result.stderr[-3000:]
  step, completed = int(match.group(1)), int(match.group(2))
  assert step == completed + 1 and 1 <= step < 100
  terms = dict(term.split('=') for term in match.group(3).split(', '))
  assert 'Loss/total_loss' in terms and 'Loss/RPNLoss/objectness_loss' in terms
  assert not np.isfinite(float(terms['Loss/total_loss']))
  # Training stopped there: the newest checkpoint is the last finite step's.
  latest = tf.train.latest_checkpoint(model_dir)
  assert latest is not None and divergence_guard.checkpoint_is_finite(latest)
  reader = tf.train.load_checkpoint(latest)
  assert reader.get_tensor('step/.ATTRIBUTES/VARIABLE_VALUE') <= completed
  assert f'The latest checkpoint, {latest}, holds finite weights' in result.stderr
