"""Parse errors of pipeline.config that name the file, the line and the field.

protobuf's text_format reports a mistyped value as, for example,
"145:14 : '  num_heads: abc': Couldn't parse integer: abc": a position, but
not which file and not always which field (a value missing before '}' points
at the next line). gc_detection.registry turns every ParseError raised while
the OD API reads a pipeline.config into a PipelineConfigError built here.
"""
import re

from google.protobuf import text_format

# A field name followed by its colon: "num_heads:", "first_phase_steps :".
_FIELD_WITH_COLON = re.compile(r'([A-Za-z_]\w*)\s*:')
_TRAILING_NAME = re.compile(r'([A-Za-z_]\w*)\s*$')


class PipelineConfigError(text_format.ParseError, ValueError):
  """pipeline.config does not parse; the message names file, line and field.

  Still a text_format.ParseError (with its line and column), so code that
  catches the OD API's own parse errors keeps working.
  """

  def __init__(self, message, line=None, column=None):
    super().__init__(message, line, column)
    self._message = message

  def __str__(self):  # ParseError would prefix "line:column : "; the message has it
    return self._message


def _offset(text, line, column):
  """Index in text of 1-based (line, column)."""
  lines = text.splitlines(keepends=True)
  return sum(len(previous) for previous in lines[:line - 1]) + column - 1


def field_at_error(text, line, column, message):
  """The name of the field whose value text_format could not parse, or None."""
  if 'has no field named' in message:
    return None  # protobuf already names the unknown field
  before = text[:_offset(text, line, column)]
  if message.startswith('Expected ":"') or ': Expected ":"' in message:
    match = _TRAILING_NAME.search(before)
    return match.group(1) if match else None
  fields = _FIELD_WITH_COLON.findall(before)
  return fields[-1] if fields else None


def parse_error_message(path, text, error):
  """A one-paragraph explanation of a text_format.ParseError in file `path`."""
  line, column = error.GetLine(), error.GetColumn()
  message = str(error)
  # Drop protobuf's own "145:14 : '  num_heads: abc': " prefix; we say it better.
  detail = re.sub(r"^\d+:\d+ : ('.*?': )?", '', message)
  if line is None or column is None:
    return f'{path}: cannot parse pipeline.config: {detail}'
  source_lines = text.splitlines()
  source = source_lines[line - 1].strip() if 0 < line <= len(source_lines) else ''
  field = field_at_error(text, line, column, message)
  where = f'field {field!r}, ' if field else ''
  return (f'{path}:{line}:{column}: cannot parse pipeline.config ({where}line '
          f'{source!r}): {detail}')
