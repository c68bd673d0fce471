"""Stops training at the first non-finite loss, before the update is applied.

The paper warns that a randomly initialised attention module can make Faster
R-CNN diverge. The stock trainer would keep going, write NaN weights into its
checkpoints and report NaN losses every 100 steps. With gc_detection
registered (gc_detection.od_api.trainer_hooks), every training step of the stock
`model_lib_v2.train_loop` instead

1. checks in the graph that every loss term of the step is finite; the
   gradients (and so the update) depend on the check, so a failing step
   changes no weight;
2. on failure stops the loop with TrainingDivergedError, whose message names
   the step and every loss term with its value;
3. makes sure the latest checkpoint of model_dir holds finite weights: if the
   newest ones do not (an update can overflow while its loss is still
   finite), the checkpoint state is pointed back to the newest finite one.
   No file is deleted.

The check is one tf.debugging.Assert per step on a few scalars; XLA (and so
TPU) compiles Assert to nothing, so there the loop is not stopped.
"""
import logging
import os
import re

import numpy as np
import tensorflow as tf

from gc_detection import user_errors

# Starts the data of the in-graph assertion, so that the error can be told
# apart from every other InvalidArgumentError.
MARKER = 'gc_detection: non-finite training loss'
_BRACKETED = re.compile(r'\[([^\[\]]*)\]')


class TrainingDivergedError(RuntimeError, user_errors.UserError):
  """A training step produced a NaN or infinite loss; training was stopped."""

  def __init__(self, message, step, losses):
    super().__init__(message)
    self.step = step
    self.losses = losses


def guard_losses(losses_dict, training_step):
  """Makes every loss depend on an assertion that all of them are finite.

  Args:
    losses_dict: {name: scalar float tensor}, as the OD API's
      `_compute_losses_and_predictions_dicts` returns it.
    training_step: the global step (number of completed steps), a tensor or
      variable.

  Returns:
    The same dict, each value passed through tf.identity after the check.
  """
  names = sorted(losses_dict)
  finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(losses_dict[name]))
                          for name in names])
  data = [MARKER, 'completed steps', tf.convert_to_tensor(training_step)]
  for name in names:
    data += [name, losses_dict[name]]
  check = tf.debugging.Assert(finite, data, summarize=1)
  with tf.control_dependencies([check]):
    return {name: tf.identity(value) for name, value in losses_dict.items()}


def is_divergence(error):
  """True for the error guard_losses' assertion raises."""
  return isinstance(error, tf.errors.InvalidArgumentError) and MARKER in str(error)


def parse_divergence(error):
  """(completed steps, {loss name: value as printed}) from the assertion's message."""
  message = str(error)
  fields = _BRACKETED.findall(message[message.index(MARKER) - 1:])
  # fields: MARKER, 'completed steps', step, name, value, name, value, ...
  step = int(fields[2])
  losses = {}
  for name, value in zip(fields[3::2], fields[4::2]):
    if not name.startswith('Loss/') and losses:
      break  # past the assertion's data (a second replica's message, ...)
    losses[name] = value
  return step, losses


def checkpoint_is_finite(checkpoint_path):
  """True if every floating-point tensor in the checkpoint is finite."""
  reader = tf.train.load_checkpoint(checkpoint_path)
  for name, dtype in reader.get_variable_to_dtype_map().items():
    if dtype.is_floating and not np.all(np.isfinite(reader.get_tensor(name))):
      return False
  return True


def newest_finite_checkpoint(model_dir):
  """Points model_dir's checkpoint state at its newest finite checkpoint.

  Only a checkpoint that holds model weights counts: the stock trainer's
  step-0 checkpoint of a model without a fine_tune_checkpoint holds only the
  step counter (the model has no variables before its first step).

  Returns:
    (path of that checkpoint or None, [newer non-finite checkpoints skipped]).
  """
  from gc_detection.od_api.training import final_checkpoint  # pylint: disable=g-import-not-at-top
  state = tf.train.get_checkpoint_state(model_dir)
  if state is None:
    return None, []
  paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
  skipped = []
  for path in reversed(paths):
    if not final_checkpoint.has_model_weights(path):
      continue
    if checkpoint_is_finite(path):
      if skipped:
        kept = paths[:paths.index(path) + 1]
        tf.compat.v1.train.update_checkpoint_state(model_dir, path, kept)
      return path, skipped
    skipped.append(path)
  return None, skipped


def diverged_error(error, model_dir):
  """The TrainingDivergedError for guard_losses' assertion `error`.

  Also repairs model_dir's checkpoint state (newest_finite_checkpoint).
  """
  completed, losses = parse_divergence(error)
  terms = ', '.join(f'{name}={value}' for name, value in losses.items())
  lines = [f'Training diverged: step {completed + 1} (after {completed} completed '
           f'steps) has a non-finite loss: {terms}. The update of that step '
           'was not applied and training stopped.']
  if model_dir:
    latest, skipped = newest_finite_checkpoint(model_dir)
    if skipped:
      lines.append('Non-finite checkpoint(s) no longer listed as latest (files '
                   f'kept): {", ".join(os.path.basename(p) for p in skipped)}.')
    if latest:
      lines.append(f'The latest checkpoint, {latest}, holds finite weights; '
                   'lower the learning rate (or add warm-up or gradient '
                   'clipping) and run again to resume from it.')
    else:
      lines.append(f'{model_dir} holds no checkpoint with finite model weights '
                   '(a step-0 checkpoint written before the first step holds '
                   'only the step counter).')
  message = ' '.join(lines)
  logging.error(message)
  return TrainingDivergedError(message, completed + 1, losses)
