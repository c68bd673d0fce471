"""The cause of a TensorFlow op error, in one line.

An error raised inside a tf.function (a SavedModel signature, a traced
model) is worded "Graph execution error:", then "Detected at node ...
defined at (most recent call last):", a stack of File lines, and only then
the op's own message (e.g. "output dimensions must be positive"), followed
by "[[{{node ...}}]] [Op:...]". Tools that report a failure per image want
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
_OP_SUFFIX = re.compile(r'\s*\[Op:[^\]]*\]\s*$')


def reason(error):
  """`ErrorType: the op's own message` of a tf.errors.OpError (or any error)."""
  text = getattr(error, 'message', None) or str(error)
  kept = []
  for line in text.splitlines():
    if line[:1].isspace() and line.strip().startswith('File "'):
      continue
    line = _OP_SUFFIX.sub('', _NODE_SUFFIX.sub('', line)).strip()
    if line and not any(pattern.search(line) for pattern in _NOISE):
      kept.append(line)
  detail = '; '.join(dict.fromkeys(kept))
  if not detail and text.strip():
    detail = text.strip().splitlines()[0]
  return f'{type(error).__name__}: {detail}' if detail else type(error).__name__
