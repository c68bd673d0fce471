r"""Kills the stock trainer with SIGKILL at random moments; checks every restart.

Each trial trains a tiny Faster R-CNN + GC (64 px, generated data, a
generated detection checkpoint to fine-tune from) with `scripts/train.sh`,
i.e. the OD API's own model_main_tf2, in a fresh model_dir:

1. starts training to `--num_steps` and sends SIGKILL to the whole process
   group after a random delay (uniform between `--min_kill_seconds` and
   `--max_kill_seconds`), possibly while a checkpoint is being written;
2. checks model_dir: every checkpoint the `checkpoint` state file lists
   reads back completely (every tensor) and holds finite weights, at steps
   that are multiples of 100 in order; checkpoint files the state does not
   list (a save cut short) are reported;
3. restarts training and lets it finish, then checks that it resumed where
   the latest checkpoint was (no new step-0 checkpoint, checkpoint steps
   continue from the latest one), that the final step is num_steps, that the
   final weights are finite and that no unlisted checkpoint file is left
   (TensorFlow's own <prefix>_temp directory of a cut save excepted).

A trial survives when every check passes. Prints one line per trial and the
survived / tried count; exits 1 if any trial failed.

Usage (about 1.5 minutes per trial on 2 cores):
  .venv/bin/python benchmarks/crash_resume.py [--trials=5] [--seed=0] [--work_dir=DIR]
"""
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKPOINT_EVERY_N = 100  # the stock trainer's block of steps


def _define_flags():
  flags.DEFINE_integer('trials', 5, 'Kill-and-restart trials.')
  flags.DEFINE_integer('seed', 0, 'Seed of the kill delays.')
  flags.DEFINE_integer('num_steps', 200, 'Steps to train to (a multiple of 100).')
  flags.DEFINE_float('min_kill_seconds', 5.0, 'Earliest kill after the start.')
  flags.DEFINE_float('max_kill_seconds', 80.0, 'Latest kill after the start.')
  flags.DEFINE_string('work_dir', None, 'Where trials run (default: a temp dir).')


class TrialFailure(AssertionError):
  """A check of a crash trial failed."""


def write_training_config(work_dir, num_steps):
  """A tiny GC Faster R-CNN config with its data and fine-tune checkpoint."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from object_detection.builders import model_builder  # pylint: disable=g-import-not-at-top
  from object_detection.utils import config_util  # pylint: disable=g-import-not-at-top
  from gc_detection import atomic_files  # pylint: disable=g-import-not-at-top
  from gc_detection.data import shapes  # pylint: disable=g-import-not-at-top
  from gc_detection.data import tf_example  # pylint: disable=g-import-not-at-top

  size = 64
  config_dir = os.path.join(REPO_ROOT, 'pipeline_configs')
  record = os.path.join(work_dir, 'train.tfrecord')
  tf_example.write_tfrecord(record, shapes.generate(seed=3, count=4, height=size,
                                                    width=size, max_boxes=2))
  label_map = os.path.join(work_dir, 'label_map.pbtxt')
  atomic_files.write_text(label_map, tf_example.label_map_text(shapes.SHAPE_COLOURS))

  def load(name):
    configs = config_util.get_configs_from_pipeline_file(os.path.join(config_dir, name))
    resizer = configs['model'].faster_rcnn.image_resizer.keep_aspect_ratio_resizer
    resizer.min_dimension = resizer.max_dimension = size
    frcnn = configs['model'].faster_rcnn
    frcnn.first_stage_max_proposals, frcnn.second_stage_batch_size = 8, 4
    frcnn.initial_crop_size = 6
    frcnn.num_classes = len(shapes.SHAPE_COLOURS)
    return configs

  stock = model_builder.build(load('faster_rcnn_resnet50_v1_600x1024_coco.config')['model'],
                              is_training=False)
  image = tf.constant(np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)),
                      tf.float32)
  stock.predict(*stock.preprocess(image))
  fine_tune = tf.train.Checkpoint(model=stock).save(os.path.join(work_dir, 'zoo', 'ckpt'))

  configs = load('faster_rcnn_resnet50_v1_gc_600x1024_coco.config')
  configs = config_util.merge_external_params_with_configs(configs, kwargs_dict={
      'batch_size': 1, 'train_input_path': record, 'eval_input_path': record,
      'label_map_path': label_map})
  train_config = configs['train_config']
  train_config.ClearField('data_augmentation_options')
  train_config.fine_tune_checkpoint = fine_tune
  train_config.fine_tune_checkpoint_type = 'detection'
  train_config.num_steps = num_steps
  # Adam at a constant 1e-4: this tiny model diverges (NaN box-classifier
  # loss within 40 steps) under momentum SGD, which the divergence guard
  # would rightly stop; a crash trial needs a run that trains.
  train_config.optimizer.ClearField('momentum_optimizer')
  adam = train_config.optimizer.adam_optimizer
  adam.learning_rate.constant_learning_rate.learning_rate = 1e-4
  train_config.optimizer.use_moving_average = False
  from gc_detection.protos import global_context_pb2  # pylint: disable=g-import-not-at-top
  pipeline = config_util.create_pipeline_proto_from_configs(configs)
  # One phase: the Adam optimizer above for every step.
  pipeline.Extensions[global_context_pb2.global_context].ClearField('training_phases')
  config_util.save_pipeline_config(pipeline, work_dir)
  return os.path.join(work_dir, 'pipeline.config')


def _train_command(config, model_dir):
  return ['bash', os.path.join(REPO_ROOT, 'scripts', 'train.sh'),
          f'--pipeline_config_path={config}', f'--model_dir={model_dir}',
          f'--checkpoint_every_n={CHECKPOINT_EVERY_N}']


def listed_checkpoints(model_dir):
  """[(checkpoint number, path)] the state file lists, oldest first."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  state = tf.train.get_checkpoint_state(model_dir)
  if state is None:
    return []
  return [(int(re.search(r'ckpt-(\d+)$', path).group(1)), path)
          for path in state.all_model_checkpoint_paths]


def check_checkpoints(model_dir):
  """Checks every listed checkpoint.

  Returns:
    ([(number, step)] oldest first, [files under model_dir named like a
    checkpoint that the state file does not list]).
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  steps = []
  for number, path in listed_checkpoints(model_dir):
    try:
      reader = tf.train.load_checkpoint(path)
      # Reads every byte: a torn file fails here.
      values = {name: reader.get_tensor(name)
                for name in reader.get_variable_to_shape_map()}
    except (tf.errors.OpError, IndexError, ValueError) as error:
      raise TrialFailure(f'{path}: unreadable: {error}') from None
    for name, value in values.items():
      if np.issubdtype(np.asarray(value).dtype, np.floating) and not np.all(
          np.isfinite(value)):
        raise TrialFailure(f'{path}: {name} is not finite')
    steps.append((number, int(values['step/.ATTRIBUTES/VARIABLE_VALUE'])))
  if [step for _, step in steps] != sorted(step for _, step in steps):
    raise TrialFailure(f'checkpoint steps out of order: {steps}')
  for _, step in steps:
    if step % CHECKPOINT_EVERY_N:
      raise TrialFailure(f'a checkpoint at step {step}, not a multiple of '
                         f'{CHECKPOINT_EVERY_N}: {steps}')
  listed = {os.path.basename(path) for _, path in listed_checkpoints(model_dir)}
  unlisted = sorted(
      name for name in os.listdir(model_dir) if name.startswith('ckpt-') and
      re.sub(r'\.(index|data-\d+-of-\d+)$', '', name) not in listed)
  return steps, unlisted


def check_resumed(before, after, num_steps):
  """Checks that a restart went on from the latest checkpoint to num_steps.

  Args:
    before: [(checkpoint number, step)] listed after the kill, oldest first.
    after: the same after the restart finished.
    num_steps: the step training was asked to reach.

  Raises:
    TrialFailure: the restart did not reach num_steps, or its first trained
      checkpoint is not one block after the latest one before it.
  """
  if not after or after[-1][1] != num_steps:
    raise TrialFailure(f'the restart ended at {after[-1:]} (checkpoint, step), '
                       f'not at step {num_steps}')
  if not before:
    return
  latest_number, latest_step = before[-1]
  new = [(number, step) for number, step in after if number > latest_number]
  # The stock trainer saves a checkpoint whenever it starts at step 0, so a
  # restart from the step-0 checkpoint saves step 0 once more.
  trained = [(number, step) for number, step in new if step or latest_step]
  if any(step <= latest_step for _, step in trained):
    raise TrialFailure(f'the restart did not resume from step {latest_step}: '
                       f'it saved {new}')
  if trained and trained[0][1] != latest_step + CHECKPOINT_EVERY_N:
    raise TrialFailure(
        f'the restart resumed at step {trained[0][1] - CHECKPOINT_EVERY_N}, '
        f'not at the latest checkpoint\'s step {latest_step}')


def run_trial(config, model_dir, kill_after_seconds, num_steps, log):
  """One kill + restart; returns a one-line summary. Raises TrialFailure."""
  started = time.perf_counter()
  with open(log, 'w') as log_file:
    process = subprocess.Popen(_train_command(config, model_dir), cwd=REPO_ROOT,
                               stdout=log_file, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
      process.wait(timeout=kill_after_seconds)
      killed = False
    except subprocess.TimeoutExpired:
      os.killpg(process.pid, signal.SIGKILL)
      process.wait()
      killed = True
  before, left_by_kill = check_checkpoints(model_dir)
  latest_step = before[-1][1] if before else None
  with open(log, 'a') as log_file:
    restarted = subprocess.run(_train_command(config, model_dir), cwd=REPO_ROOT,
                               stdout=log_file, stderr=subprocess.STDOUT,
                               check=False, timeout=1800)
  if restarted.returncode != 0:
    raise TrialFailure(f'the restart exited with {restarted.returncode}; see {log}')
  after, unlisted = check_checkpoints(model_dir)
  # TensorFlow saves into <prefix>_temp/ and merges into <prefix>.index/.data;
  # a kill in between leaves that directory, which nothing lists or reads.
  unlisted = [name for name in unlisted if not name.endswith('_temp')]
  if unlisted:
    raise TrialFailure(f'checkpoint files no state lists after the restart: {unlisted}')
  check_resumed(before, after, num_steps)
  what = (f'killed after {kill_after_seconds:.1f} s' if killed else
          f'finished before the kill at {kill_after_seconds:.1f} s')
  leftovers = f' (unlisted after the kill: {", ".join(left_by_kill)})' if left_by_kill else ''
  return (f'{what}; latest checkpoint then at step {latest_step}{leftovers}; '
          f'restart resumed and reached step {num_steps} with finite weights '
          f'({time.perf_counter() - started:.0f} s)')


def run_trials(trials, seed, num_steps, min_kill, max_kill, work_dir):
  """Returns (survived, [summary lines])."""
  config = write_training_config(os.path.join(work_dir, 'config'), num_steps)
  rng = random.Random(seed)
  survived, lines = 0, []
  for index in range(trials):
    delay = rng.uniform(min_kill, max_kill)
    model_dir = os.path.join(work_dir, f'trial_{index}')
    try:
      summary = run_trial(config, model_dir, delay, num_steps,
                          os.path.join(work_dir, f'trial_{index}.log'))
      survived += 1
      lines.append(f'trial {index + 1}: survived: {summary}')
    except TrialFailure as failure:
      lines.append(f'trial {index + 1}: FAILED: {failure}')
    print(lines[-1], flush=True)
  return survived, lines


def main(argv):
  del argv
  values = flags.FLAGS
  work_dir = values.work_dir or tempfile.mkdtemp(prefix='gc_crash_resume_')
  survived, _ = run_trials(values.trials, values.seed, values.num_steps,
                           values.min_kill_seconds, values.max_kill_seconds, work_dir)
  print(f'\n{survived} of {values.trials} trials survived (SIGKILL at random '
        f'moments, seed {values.seed}); logs and model dirs in {work_dir}')
  sys.exit(0 if survived == values.trials else 1)


if __name__ == '__main__':
  _define_flags()
  app.run(main)
