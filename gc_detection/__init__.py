"""gc_detection: the global-context self-attention module of Lee, Kim and Jung
(Electronics 2021) for TensorFlow's vision libraries.

- gc_detection.layers: the Keras layer and its settings (no framework).
- gc_detection.od_api: the TF2 Object Detection API adapter (GC feature
  extractors, the pipeline.config extension, hooks of the stock trainer,
  evaluator and exporter).
- gc_detection.model_garden: the TF Model Garden adapter.
- gc_detection.cli: the command-line programs.

Importing the package is cheap (no TensorFlow import) and makes the
`[gc_detection.protos.global_context]` extension of pipeline.config parseable
by anyone (now if the OD API's pipeline_pb2 is already imported, else right
after it is). `register()` makes the OD API in this process know the GC
feature extractors and applies every change listed in
gc_detection.od_api.touch_points; in the venv scripts/setup.sh makes, that
happens by itself when the OD API is imported (the start-up hook,
gc_detection.od_api.startup_hook), unless GC_DETECTION_AUTOREGISTER=0 is set.
"""

__version__ = '0.1.0'


def register():
  """Registers gc_detection with the OD API in this process (idempotent)."""
  from gc_detection.od_api import touch_points  # pylint: disable=g-import-not-at-top
  touch_points.register()


def _watch_extension():
  from gc_detection.od_api import startup_hook  # pylint: disable=g-import-not-at-top
  startup_hook.watch_extension()


_watch_extension()
