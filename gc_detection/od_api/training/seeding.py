"""GC_DETECTION_SEED: a seeded stock trainer.

The stock trainer seeds nothing: its weights, input shuffling, augmentation
and proposal sampling differ from run to run. With the variable set, two runs
of the same config start from the same weights and see the same batches (up
to the float summation order of multi-threaded kernels). Every worker of a
multi-worker run must set the same value (the stock file sharding is a
partition only then).
"""
import logging
import os

from gc_detection import user_errors

SEED_VARIABLE = 'GC_DETECTION_SEED'


def seed_from_environment():
  """Seeds Python, NumPy and TensorFlow from $GC_DETECTION_SEED, if set.

  Returns:
    The seed, or None when the variable is unset or empty.

  Raises:
    GlobalContextConfigError: the value is not an integer.
  """
  value = os.environ.get(SEED_VARIABLE, '').strip()
  if not value:
    return None
  try:
    seed = int(value)
  except ValueError:
    raise user_errors.GlobalContextConfigError(
        f'{SEED_VARIABLE}: expected an integer seed, got {value!r}') from None
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.keras.utils.set_random_seed(seed)
  logging.info('gc_detection: Python, NumPy and TensorFlow seeded with %d (%s)', seed,
               SEED_VARIABLE)
  return seed
