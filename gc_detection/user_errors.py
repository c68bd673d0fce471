"""Errors that are the user's to fix, and how the OD API's programs print them.

Every error gc_detection raises about a user's input (a pipeline.config that
does not parse, a missing TFRecord, a model_dir in use, a diverged run, ...)
is also a `UserError`. Its message names the field, file or value and the
fix, so a Python traceback adds nothing but noise. When the process is one of
the OD API's own programs (`python -m object_detection.model_main_tf2` or
`exporter_main_v2`), gc_detection.od_api.touch_points installs `print_user_errors` as
sys.excepthook: an uncaught UserError prints as one line,
`<program>: error: <ErrorType>: <message>`, and the process exits with status
1; every other exception keeps its traceback. Set GC_DETECTION_TRACEBACKS=1
to see tracebacks for UserErrors too.
"""
import os
import sys

TRACEBACKS_VARIABLE = 'GC_DETECTION_TRACEBACKS'
# The OD API programs whose uncaught UserErrors print as one line.
PROGRAMS = ('model_main_tf2', 'exporter_main_v2')


class UserError(Exception):
  """Mixin: the message says what input is wrong and how to fix it."""


class GlobalContextConfigError(ValueError, UserError):
  """The [gc_detection.protos.global_context] extension or the model type is wrong."""


def _program_name():
  name = os.path.splitext(os.path.basename(sys.argv[0] if sys.argv else ''))[0]
  return name if name in PROGRAMS else None


def print_user_errors(previous_hook):
  """An excepthook: UserErrors as one line, anything else to previous_hook."""
  def hook(exception_type, exception, traceback):
    if (issubclass(exception_type, UserError) and
        os.environ.get(TRACEBACKS_VARIABLE, '') in ('', '0')):
      print(f'{_program_name() or "gc_detection"}: error: '
            f'{exception_type.__name__}: {exception}', file=sys.stderr)
      return
    previous_hook(exception_type, exception, traceback)
  hook.gc_detection_user_errors = True
  return hook


def install_for_programs():
  """Installs print_user_errors when this process is an OD API program (once)."""
  if _program_name() and not getattr(sys.excepthook, 'gc_detection_user_errors', False):
    sys.excepthook = print_user_errors(sys.excepthook)
