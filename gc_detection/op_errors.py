"""The cause of a TensorFlow op error, in one line.

An error raised inside a tf.function (a SavedModel signature, a traced
model) is worded "Graph execution error:", then "Detected at node ...
defined at (most recent call last):", a stack of File lines, and only then
the op's own message (e.g. "output dimensions must be positive"), followed
by "[[{{node ...}}]] [Op:...]"; an eager op's error is "{{function_node
...}} message [Op:Name] name: ". Tools that report a failure per image want
that message.
"""
import re

_NOISE = (
    re.compile(r'^Graph execution error:?$'),
    re.compile(r'^Detected at node .* defined at \(most recent call last\):?$'),
    re.compile(r'^Detected unsupported operations'),
    re.compile(r'^File "'),
    re.compile(r'^<stack traces unavailable>$'),
)
_NODE_SUFFIX = re.compile(r'\s*\[\[\{\{node [^}]*\}\}\]\].*$')
_OP_SUFFIX = re.compile(r'\s*\[Op:[^\]]*\](\s*name:.*)?$')
# Eager errors start with the function's name: "{{function_node __wrapped__...}}".
_FUNCTION_NODE = re.compile(r'\{\{function_node [^}]*\}\}\s*')


def reason(error):
  """`ErrorType: the op's own message` of a tf.errors.OpError (or any error)."""
  text = getattr(error, 'message', None) or str(error)
  kept = []
  for line in text.splitlines():
    if line[:1].isspace() and line.strip().startswith('File "'):
      continue
    line = _OP_SUFFIX.sub('', _NODE_SUFFIX.sub('', _FUNCTION_NODE.sub('', line))).strip()
    if line and not any(pattern.search(line) for pattern in _NOISE):
      kept.append(line)
  detail = '; '.join(dict.fromkeys(kept))
  if not detail and text.strip():
    detail = text.strip().splitlines()[0]
  return f'{type(error).__name__}: {detail}' if detail else type(error).__name__


def model_failure(error, image_shape):
  """Why a detection model failed on an (H, W, ...) image, in one line."""
  cause = reason(error)
  message = f'the model failed on this image ({cause})'
  if 'output dimensions must be positive' in cause:
    height, width = image_shape[:2]
    message += (f': its resizer scaled a side of the {height}x{width} input to 0 '
                'pixels; the aspect ratio is too extreme for the model')
  return message
