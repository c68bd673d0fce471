"""Start-up hook: registers gc_detection when the OD API is imported.

The venv's site-packages holds `gc_detection_autoregister.pth` (written by
`python -m gc_detection.tools.install_startup_hook`, which scripts/setup.sh
runs), whose one line imports this module when Python starts. This module only
installs an import hook (no TensorFlow import): right after one of the OD API
modules listed in gc_detection.registry.PATCHES finishes importing, the
registry patches it. So `python -m object_detection.model_main_tf2` and
`python -m object_detection.exporter_main_v2` know the GC types with no change
to OD API files.

The compatibility shims (gc_detection.compat) are applied right *before*
any of these modules, or of SHIMMED_MODULES, runs: on TensorFlow >= 2.16 the
OD API's `inputs` and `model_lib` cannot even be imported without them.

Set GC_DETECTION_AUTOREGISTER=0 to switch it off.
"""
import importlib.abc
import os
import sys

ENVIRONMENT_VARIABLE = 'GC_DETECTION_AUTOREGISTER'
# Kept equal to the keys of gc_detection.registry.PATCHES (a test checks);
# listed here so that start-up imports nothing heavy.
TRIGGER_MODULES = frozenset({
    'object_detection.utils.config_util',
    'object_detection.builders.model_builder',
    'object_detection.model_lib',
    'object_detection.exporter_lib_v2',
    'object_detection.model_lib_v2',
    'object_detection.builders.optimizer_builder',
})
# Not patched, but they need gc_detection.compat applied before they run:
# `from tensorflow.compat.v1 import estimator` at import time (inputs,
# model_lib), Pillow 9's ImageFont.getsize (visualization_utils).
SHIMMED_MODULES = frozenset({
    'object_detection.inputs',
    'object_detection.model_lib',
    'object_detection.utils.visualization_utils',
})


class _PatchAfterExec(importlib.abc.Loader):
  """Applies the shims, runs the real loader, then the registry's patch."""

  def __init__(self, loader):
    self._loader = loader

  def create_module(self, spec):
    return self._loader.create_module(spec)

  def exec_module(self, module):
    from gc_detection import compat  # pylint: disable=g-import-not-at-top
    compat.apply()
    self._loader.exec_module(module)
    if module.__name__ in TRIGGER_MODULES:
      from gc_detection import registry  # pylint: disable=g-import-not-at-top
      registry.on_module_imported(module.__name__)


class _OdApiImportHook(importlib.abc.MetaPathFinder):
  """Finds trigger modules through the other finders and wraps their loader."""

  def find_spec(self, fullname, path, target=None):
    if fullname not in TRIGGER_MODULES and fullname not in SHIMMED_MODULES:
      return None
    for finder in sys.meta_path:
      if finder is self or not hasattr(finder, 'find_spec'):
        continue
      spec = finder.find_spec(fullname, path, target)
      if spec is not None:
        if spec.loader is not None:
          spec.loader = _PatchAfterExec(spec.loader)
        return spec
    return None


def enabled():
  return os.environ.get(ENVIRONMENT_VARIABLE, '1').strip().lower() not in (
      '0', 'false', 'no', 'off')


def install():
  """Installs the import hook once (no-op when disabled or installed)."""
  if enabled() and not any(isinstance(f, _OdApiImportHook) for f in sys.meta_path):
    sys.meta_path.insert(0, _OdApiImportHook())


install()
