"""Reading StringIntLabelMap files with errors that say what is wrong.

The OD API's `label_map_util.load_labelmap` falls back to the binary format
when the text does not parse, and passes it a str: a typo in a .pbtxt then
surfaces as `TypeError: expected bytes, str found`. `load_label_map` reports
the text parser's error instead, naming the file.
"""


class LabelMapError(ValueError):
  """A label map file is missing, does not parse or is invalid."""


def load_label_map(path):
  """The StringIntLabelMap of a .pbtxt file, validated as the OD API does.

  Raises:
    LabelMapError: naming the file and the reason.
  """
  from google.protobuf import message  # pylint: disable=g-import-not-at-top
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  from object_detection.utils import label_map_util  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if not tf.io.gfile.exists(path):
    raise LabelMapError(f'{path!r} does not exist')
  if tf.io.gfile.isdir(path):
    raise LabelMapError(f'{path!r} is a directory, not a label map file')
  try:
    return label_map_util.load_labelmap(path)
  except (text_format.ParseError, message.DecodeError, TypeError, ValueError,
          UnicodeDecodeError) as error:
    # The binary fallback's TypeError hides the text parser's error.
    reason = error.__context__ if isinstance(error, TypeError) and error.__context__ else error
    if isinstance(reason, UnicodeDecodeError):
      reason = 'not a text file'
    raise LabelMapError(f'{path!r} is not a valid StringIntLabelMap text proto: '
                        f'{reason}') from None
