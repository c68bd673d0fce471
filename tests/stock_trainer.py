"""The OD API's own model_main_tf2 for tests, with short training iterations.

model_main_tf2 calls model_lib_v2.train_loop with its default
num_steps_per_iteration=100, for which it has no flag: every run trains a
multiple of 100 steps (`--num_train_steps=1` trains 100). `command(...,
steps_per_iteration=N)` runs the same program (its flags, strategy choice,
evaluation mode, gc_detection's start-up hook and trainer hooks) with
train_loop given num_steps_per_iteration=N, so that a test can train 1 or 10
steps. Without steps_per_iteration it is plain
`python -m object_detection.model_main_tf2`.
"""
import sys

DRIVER = r'''
import functools
import sys
from absl import app
from object_detection import model_lib_v2
from object_detection import model_main_tf2
steps_per_iteration = int(sys.argv.pop(1))
sys.argv[0] = 'model_main_tf2'  # the program name gc_detection's error printing knows
model_lib_v2.train_loop = functools.partial(
    model_lib_v2.train_loop, num_steps_per_iteration=steps_per_iteration)
app.run(model_main_tf2.main)
'''


def arguments(pipeline_config, model_dir, *flags, steps_per_iteration=None):
  """Python's arguments for model_main_tf2 training `pipeline_config` into `model_dir`."""
  program_flags = [f'--pipeline_config_path={pipeline_config}',
                   f'--model_dir={model_dir}', *flags]
  if steps_per_iteration is None:
    return ['-m', 'object_detection.model_main_tf2', *program_flags]
  return ['-c', DRIVER, str(steps_per_iteration), *program_flags]


def command(pipeline_config, model_dir, *flags, steps_per_iteration=None):
  """argv of that process (this interpreter)."""
  return [sys.executable] + arguments(pipeline_config, model_dir, *flags,
                                      steps_per_iteration=steps_per_iteration)
