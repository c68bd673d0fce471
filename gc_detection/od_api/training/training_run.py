"""What the stock train_loop running in this context trains.

gc_detection's hook of `model_lib_v2.train_loop` opens `running(run)` around
the stock loop; the hooks called inside it (the model builder, the optimizer
builder, the fine-tune restore, the loop's end) fill in or read the run.
"""
import contextlib
import contextvars
import dataclasses
from typing import Any, Optional

_current = contextvars.ContextVar('gc_detection_training_run', default=None)


@dataclasses.dataclass
class TrainingRun:
  """What one stock train_loop trains, as its hooks see it.

  model_dir: the train_loop's model_dir.
  checkpoint_max_to_keep: its checkpoint_max_to_keep.
  model: the DetectionModel it built for training (None until built).
  optimizer: the optimizer it built (None until built).
  global_step: the int64 step variable the optimizer was built with.
  finished: the final checkpoint has been dealt with.
  """
  model_dir: str
  checkpoint_max_to_keep: int
  model: Optional[Any] = None
  optimizer: Optional[Any] = None
  global_step: Optional[Any] = None
  finished: bool = False


def current():
  """The TrainingRun of the train_loop running in this context, or None."""
  return _current.get()


@contextlib.contextmanager
def running(run):
  """Makes `run` current inside the `with` statement."""
  token = _current.set(run)
  try:
    yield run
  finally:
    _current.reset(token)
