"""What every gc_detection command shares: start-up, wrong-input reports, exit status.

A command is a thin module under gc_detection.cli that defines its absl flags
at module level (as the OD API's own `model_main_tf2` does), a `main(argv)`,
and ends with

    if __name__ == '__main__':
      program.run(main)

Library code never defines flags, so importing it beside any command cannot
clash in absl's global flag registry; tests call the library functions, or
run the command in a subprocess.

Exit statuses, the same for every command:
  0  done;
  1  a UserError (a file or setting the user has to fix; the message names
     it), or some inputs were skipped (the command says which);
  2  a usage error: an unknown flag, a missing required flag, a flag value out
     of range, or unexpected positional arguments.
Both errors print as one line, `<command>: error: <message>`, with no
traceback (GC_DETECTION_TRACEBACKS=1 shows it).
"""
import os
import sys

from absl import app
from absl import flags

from gc_detection import user_errors

EXIT_OK = 0
EXIT_USER_ERROR = 1
EXIT_USAGE = 2


class UsageError(user_errors.UserError):
  """A wrong flag value or argument; the message names the flag."""


def command_name():
  """The running command's name: `infer` for `python -m gc_detection.cli.infer`."""
  main_module = sys.modules.get('__main__')
  spec = getattr(main_module, '__spec__', None)
  if spec is not None and spec.name:
    return spec.name.rsplit('.', 1)[-1]
  return os.path.splitext(os.path.basename(sys.argv[0] if sys.argv else ''))[0]


def report(message):
  """Prints `<command>: error: <message>` to stderr."""
  print(f'{command_name()}: error: {message}', file=sys.stderr)


def no_arguments(argv, hint=''):
  """Raises UsageError if argv holds positional arguments after the program."""
  if len(argv) > 1:
    raise UsageError(f'unexpected arguments: {" ".join(argv[1:])}'
                     + (f' ({hint})' if hint else ''))


def require(*flag_names):
  """Raises UsageError naming the first of flag_names that has no value."""
  for name in flag_names:
    if flags.FLAGS[name].value in (None, '', []):
      raise UsageError(f'--{name} is required')


def _parse_flags(argv):
  """absl's flag parsing; an unknown or malformed flag exits with status 2."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as error:
    report(f'{error}\nPass --helpfull to see every flag.')
    sys.exit(EXIT_USAGE)


def _shows_tracebacks():
  return os.environ.get(user_errors.TRACEBACKS_VARIABLE, '') not in ('', '0')


def run(main):
  """Runs main(argv) under absl; returns only through sys.exit.

  main returns an exit status (None means 0). A UsageError it raises exits
  with 2, any other UserError with 1, each printed as one line.
  """
  def guarded_main(argv):
    try:
      return main(argv) or EXIT_OK
    except UsageError as error:
      if _shows_tracebacks():
        raise
      report(error)
      return EXIT_USAGE
    except user_errors.UserError as error:
      if _shows_tracebacks():
        raise
      report(f'{type(error).__name__}: {error}')
      return EXIT_USER_ERROR

  app.run(guarded_main, flags_parser=_parse_flags)
