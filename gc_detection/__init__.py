"""gc_detection: global-context self-attention for the TF2 Object Detection API.

Importing the package is cheap (no TensorFlow import). `register()` prepares the
running process for the OD API: it applies the compatibility shims in
`gc_detection.compat`. Calling it more than once is harmless.
"""

__version__ = '0.1.0'


def register():
  """Makes the installed OD API usable from this process (idempotent)."""
  from gc_detection import compat  # pylint: disable=g-import-not-at-top
  compat.apply()
