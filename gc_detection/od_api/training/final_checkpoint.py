"""A checkpoint at the last step of every stock training run.

The stock `model_lib_v2.train_loop` saves a checkpoint at step 0 (before the
first step: with no fine_tune_checkpoint the model has no variables yet, so
it holds only the step counter) and then whenever `checkpoint_every_n` steps
have passed. A run whose length is not a multiple of `checkpoint_every_n`
(`--num_train_steps=100` with the default 1000) ends without saving its
trained weights, exits 0, and leaves model_dir's latest checkpoint without a
model (`scripts/export.sh` then fails with "Found N Python objects that were
not bound").

gc_detection's trainer hooks record what a train_loop trains (the model it
builds, the optimizer and global step it builds the optimizer with) in a
training_run.TrainingRun and, when the stock loop has finished its last step
(at its
`clean_temporary_directories`, before the non-chief workers' directories are
removed), calls `save_if_behind`: if the latest checkpoint is not at the step
reached, it saves one there, exactly as the stock CheckpointManager would
have: the same objects (step, model, optimizer), the same directory, the
next checkpoint number, the same max_to_keep.
"""
import logging
import os

import tensorflow as tf

STEP_KEY = 'step/.ATTRIBUTES/VARIABLE_VALUE'
SAVE_COUNTER_KEY = 'save_counter/.ATTRIBUTES/VARIABLE_VALUE'


def checkpoint_step(path):
  """The global step stored in checkpoint `path` (the one reader of it).

  The stock trainer's checkpoint number (`ckpt-N`) counts saves, not steps.
  """
  return int(tf.train.load_checkpoint(path).get_tensor(STEP_KEY))


def latest_step(model_dir):
  """The global step of model_dir's latest checkpoint, 0 if it has none."""
  latest = tf.train.latest_checkpoint(model_dir) if os.path.isdir(model_dir) else None
  return 0 if latest is None else checkpoint_step(latest)


def has_model_weights(path):
  """True if checkpoint `path` holds any variable of a model (`model/...`)."""
  return any(name.startswith('model/') and name.endswith('VARIABLE_VALUE')
             for name in tf.train.load_checkpoint(path).get_variable_to_shape_map())


def save_if_behind(run, strategy, checkpoint_dir):
  """Saves run's state in checkpoint_dir unless its latest checkpoint has that step.

  Args:
    run: the training_run.TrainingRun of the loop that just finished.
    strategy: the loop's tf.distribute strategy.
    checkpoint_dir: where that loop's CheckpointManager saved (model_dir, or a
      non-chief worker's temporary directory).

  Returns:
    The path of the checkpoint saved, or None.
  """
  run.finished = True
  if run.model is None or run.optimizer is None or run.global_step is None:
    return None
  step = int(run.global_step.value())
  latest = tf.train.latest_checkpoint(checkpoint_dir)
  if latest is not None and checkpoint_step(latest) == step:
    return None
  max_to_keep = run.checkpoint_max_to_keep if strategy.extended.should_checkpoint else 1
  with strategy.scope():
    checkpoint = tf.train.Checkpoint(step=run.global_step, model=run.model,
                                     optimizer=run.optimizer)
    if latest is not None:
      # Continue the stock manager's numbering: ckpt-N+1, with save_counter N+1.
      counter = tf.train.load_checkpoint(latest).get_tensor(SAVE_COUNTER_KEY)
      checkpoint.save_counter.assign(counter)
    manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir,
                                         max_to_keep=max_to_keep)
    path = manager.save()
  logging.info('gc_detection: training ended at step %d, %s steps after the '
               'last checkpoint; saved %s so that the trained weights are kept',
               step, step - checkpoint_step(latest) if latest else step, path)
  return path
