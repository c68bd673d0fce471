"""Reading pipeline.config: errors that name the file, the line and the field.

protobuf's text_format reports a mistyped value as, for example,
"145:14 : '  num_heads: abc': Couldn't parse integer: abc": a position, but
not which file and not always which field (a value missing before '}' points
at the next line). `read_pipeline` is the one reader of pipeline.config for
every entry point (the stock trainer and evaluator through config_hooks,
scripts/export.sh and gc_detection's tools directly): a missing, binary or
unparsable file, or one with two GC extensions, is a PipelineConfigError
naming the file, the line and the field.
"""
import re

from google.protobuf import text_format

from gc_detection import user_errors

# A field name followed by its colon: "num_heads:", "first_phase_steps :".
_FIELD_WITH_COLON = re.compile(r'([A-Za-z_]\w*)\s*:')
_TRAILING_NAME = re.compile(r'([A-Za-z_]\w*)\s*$')


class PipelineConfigError(text_format.ParseError, ValueError, user_errors.UserError):
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


_GC_BLOCK_START = re.compile(r'\[\s*gc_detection\.protos\.global_context\s*\]')


def _extension_start_lines(text):
  """1-based line numbers where a [gc_detection.protos.global_context] extension starts.

  Comments are ignored; the extension can only appear at the top level of a
  pipeline.config, so every occurrence starts one.
  """
  lines = []
  for number, line in enumerate(text.splitlines(), start=1):
    code = line.split('#', 1)[0]
    lines += [number] * len(_GC_BLOCK_START.findall(code))
  return lines


def read_pipeline_text(path):
  """The text of pipeline.config `path`, or a PipelineConfigError naming it.

  Raises:
    PipelineConfigError: the file is missing, a directory, or not UTF-8 text.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if not path:
    raise PipelineConfigError('pipeline_config_path: not set (expected a '
                              'pipeline.config file)')
  if tf.io.gfile.isdir(path):
    raise PipelineConfigError(f'{path}: is a directory; expected a '
                              'pipeline.config file')
  if not tf.io.gfile.exists(path):
    raise PipelineConfigError(f'{path}: no such file (expected a pipeline.config)')
  with tf.io.gfile.GFile(path, 'rb') as config_file:
    data = config_file.read()
  try:
    return data.decode('utf-8')
  except UnicodeDecodeError as error:
    raise PipelineConfigError(
        f'{path}: not a text file (byte {error.start} is not UTF-8); a '
        'pipeline.config is a text-format TrainEvalPipelineConfig') from None


def check_pipeline_text(path, text):
  """Parses `text` (of file `path`) as a TrainEvalPipelineConfig; returns it.

  This is the one check every entry point runs before the OD API parses the
  same text, so that every bad file gets the same message.

  Raises:
    PipelineConfigError: the text does not parse (naming file, line and
      field), or it holds two [gc_detection.protos.global_context] extensions
      (text_format.Merge would silently merge them, the second's values
      winning).
  """
  from object_detection.protos import pipeline_pb2  # pylint: disable=g-import-not-at-top
  import gc_detection.protos.global_context_pb2  # pylint: disable=g-import-not-at-top,unused-import
  pipeline = pipeline_pb2.TrainEvalPipelineConfig()
  try:
    text_format.Merge(text, pipeline)
  except text_format.ParseError as error:
    raise PipelineConfigError(parse_error_message(path, text, error),
                              error.GetLine(), error.GetColumn()) from None
  starts = _extension_start_lines(text)
  if len(starts) > 1:
    raise PipelineConfigError(
        f'{path}:{starts[1]}: a second [gc_detection.protos.global_context] '
        f'extension (the first starts at line {starts[0]}); a pipeline.config has '
        'at most one: merge them into one', starts[1], 1)
  return pipeline


def read_pipeline(path, config_override=None):
  """The TrainEvalPipelineConfig of file `path`, checked (check_pipeline_text).

  config_override: text-format fields merged over the file's, as the OD API's
  `--config_override` does (checked alike).
  """
  pipeline = check_pipeline_text(path, read_pipeline_text(path))
  if config_override:
    pipeline.MergeFrom(check_pipeline_text('--config_override', config_override))
  return pipeline
