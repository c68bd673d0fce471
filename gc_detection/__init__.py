"""gc_detection: global-context self-attention for the TF2 Object Detection API.

Importing the package is cheap (no TensorFlow import). `register()` makes the
OD API in this process know the GC feature extractors and the
`[gc_detection.protos.global_context]` block of pipeline.config, and applies the
compatibility shims (see gc_detection.registry). Calling it again is harmless.

Once installed by scripts/setup.sh, registration is automatic in every Python
process of the venv (a start-up hook, gc_detection._autoregister), unless
GC_DETECTION_AUTOREGISTER=0 is set.
"""

__version__ = '0.1.0'


def register():
  """Registers gc_detection with the OD API in this process (idempotent)."""
  from gc_detection import registry  # pylint: disable=g-import-not-at-top
  registry.register()
