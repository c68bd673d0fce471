"""The TF2 Object Detection API adapter: all of gc_detection that touches the OD API.

- extractors/: the GC feature extractors (thin subclasses of the OD API's).
- extension_settings: the pipeline.config extension -> GlobalContextSettings.
- pipeline_binding: which pipeline's settings a model being built gets
  (`pipeline_scope`, `bind`).
- touch_points: the one table of every OD API attribute gc_detection changes,
  and the hooks it installs (config_hooks, model_builder_hooks,
  optimizer_hooks, trainer_hooks, exporter_hooks, fine_tune_restore);
  startup_hook applies them when the OD API is imported.
- training/: what the trainer hooks run (pre-flight checks, divergence guard,
  final checkpoint, model_dir lock, seeding, hybrid optimizer, two phases).
- the tools' OD API side: inference on exported models, attention maps,
  checkpoint evaluation, ResNet weight conversion, label maps.

`pipeline_scope`, `bind` and `gc_types` are importable from here; importing
this package is cheap (the start-up hook does at every interpreter start).
"""
import importlib

_PUBLIC = {
    'pipeline_scope': 'pipeline_binding',
    'bind': 'pipeline_binding',
    'gc_types': 'model_builder_hooks',
}


def __getattr__(name):
  if name in _PUBLIC:
    return getattr(importlib.import_module(f'{__name__}.{_PUBLIC[name]}'), name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
  return sorted(list(globals()) + list(_PUBLIC))
