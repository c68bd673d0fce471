"""The checks of a crash trial (benchmarks/crash_resume.py): what a kill may leave behind.

Every checkpoint the `checkpoint` state file lists must read back completely
with finite weights, at steps that are multiples of CHECKPOINT_EVERY_N in
order; a restart must go on from the latest one (checkpoints and its own loss
summaries), to the final step.
"""
import glob
import os
import re

# Steps between checkpoints: one iteration of the stock train_loop
# (its num_steps_per_iteration, 100 by default), which logs the loss at its end.
CHECKPOINT_EVERY_N = 100
STEP_KEY = 'step/.ATTRIBUTES/VARIABLE_VALUE'


class TrialFailure(AssertionError):
  """A check of a crash trial failed."""



def _checkpoint_number(path):
  return int(re.search(r'ckpt-(\d+)$', path).group(1))


def listed_checkpoints(model_dir):
  """[(checkpoint number, path)] the state file lists, oldest first."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  state = tf.train.get_checkpoint_state(model_dir)
  if state is None:
    return []
  return [(_checkpoint_number(path), path) for path in state.all_model_checkpoint_paths]


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
    steps.append((number, int(values[STEP_KEY])))
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

  Returns:
    The step the restart went on from, according to the checkpoints.

  Raises:
    TrialFailure: the restart did not reach num_steps, saved a step already
      checkpointed, or its first trained checkpoint is not one iteration after
      the latest one before it.
  """
  if not after or after[-1][1] != num_steps:
    raise TrialFailure(f'the restart ended at {after[-1:]} (checkpoint, step), '
                       f'not at step {num_steps}')
  if not before:
    return 0
  latest_number, latest_step = before[-1]
  new = [(number, step) for number, step in after if number > latest_number]
  # The stock trainer saves a checkpoint whenever it starts at step 0, so a
  # restart from the step-0 checkpoint saves step 0 once more.
  trained = [(number, step) for number, step in new if step or latest_step]
  if any(step < latest_step for _, step in trained):
    raise TrialFailure(f'the restart did not resume from step {latest_step}: '
                       f'it saved {new}')
  if any(step == latest_step for _, step in trained):
    raise TrialFailure(f'the restart saved step {latest_step} again (a duplicate of '
                       f'the latest checkpoint before it): it saved {new}')
  if trained and trained[0][1] != latest_step + CHECKPOINT_EVERY_N:
    raise TrialFailure(
        f'the restart resumed at step {trained[0][1] - CHECKPOINT_EVERY_N}, '
        f'not at the latest checkpoint\'s step {latest_step}')
  return latest_step


def events_files(model_dir):
  """The TensorBoard event files the trainer wrote under model_dir/train."""
  return set(glob.glob(os.path.join(model_dir, 'train', 'events.out.tfevents.*')))


def logged_loss_steps(paths):
  """Sorted steps at which the files in `paths` hold a Loss/total_loss summary."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  steps = set()
  for path in paths:
    try:
      for event in tf.compat.v1.train.summary_iterator(path):
        if any(value.tag == 'Loss/total_loss' for value in event.summary.value):
          steps.add(int(event.step))
    except tf.errors.DataLossError:
      pass  # the tail of a file its writer was killed while writing
  return sorted(steps)
