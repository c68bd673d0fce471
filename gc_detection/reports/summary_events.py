"""Scalar summaries out of TensorBoard event files, without TensorBoard.

What gc_detection.reports.evaluator_metrics reads: the evaluation summaries
the OD API's evaluator (MODEL_DIR/eval) and Model Garden's trainer
(MODEL_DIR/validation) write. Both write TF2 tensor summaries; TF1
`simple_value` summaries are read as well. TensorFlow is imported only when
the files are read, so a command can reject a malformed flag without the
seconds that import takes.
"""
import collections
import glob
import os

EVENT_FILE_PATTERN = 'events.out.tfevents.*'


def event_files(directory, recursive=True):
  """The sorted event files in directory (and, if recursive, below it)."""
  if recursive:
    return sorted(glob.glob(os.path.join(directory, '**', EVENT_FILE_PATTERN),
                            recursive=True))
  return sorted(glob.glob(os.path.join(directory, EVENT_FILE_PATTERN)))


def _scalar(value, tf):
  """The float of a summary value (simple_value or scalar tensor), or None."""
  kind = value.WhichOneof('value')
  if kind == 'simple_value':
    return float(value.simple_value)
  if kind == 'tensor':
    array = tf.make_ndarray(value.tensor)
    if array.size == 1 and array.dtype.kind in 'fiu':
      return float(array.reshape(()))
  return None


def _events(path, tf):
  """Yields the Event protos of one event file.

  What tf.compat.v1.train.summary_iterator does, without its deprecation
  notice. A file the evaluator is still writing may end in a partial record;
  reading stops there.
  """
  try:
    for record in tf.data.TFRecordDataset(path):
      yield tf.compat.v1.Event.FromString(record.numpy())
  except tf.errors.DataLossError:
    return


def read_scalars(files, tags):
  """Returns {directory: {tag: {step: value}}} of the scalar summaries in files.

  Only the given tags are read. A step written more than once (the evaluator
  run again on the same checkpoints) keeps the value with the latest wall time.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tags = frozenset(tags)
  timed = collections.defaultdict(lambda: collections.defaultdict(dict))
  for path in files:
    for event in _events(path, tf):
      for value in event.summary.value:
        number = _scalar(value, tf) if value.tag in tags else None
        if number is None:
          continue
        steps = timed[os.path.dirname(path)][value.tag]
        if event.step not in steps or steps[event.step][0] <= event.wall_time:
          steps[event.step] = (event.wall_time, number)
  return {directory: {tag: {step: number for step, (_, number) in steps.items()}
                      for tag, steps in tags_steps.items()}
          for directory, tags_steps in timed.items()}
