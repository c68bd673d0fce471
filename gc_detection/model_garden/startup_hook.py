"""Start-up hook: official.vision's trainer and exporter know the GC experiments.

`python -m official.vision.train` and `official/vision/serving/export_saved_model`
import `official.vision.registry_imports` to register official.vision's
backbones, tasks and experiments, and nothing of a third party. Right after
that module finishes importing, this hook imports
gc_detection.model_garden.registry (the `resnet_gc` backbone, the GC tasks,
the experiments), so the stock programs run GC experiments unmodified.

Why this way: the same .pth line that starts the OD API hook starts this one
(`python -m gc_detection.cli.install_startup_hook`, run by scripts/setup.sh),
GC_DETECTION_AUTOREGISTER=0 turns both off, and it installs only an import
finder (no TensorFlow import at start-up). The alternatives need something
from every user command: a gin file with an `import` line passed as
`--gin_file`, or a driver program in place of the stock trainer. In one's own
code, `import gc_detection.model_garden.registry` registers everything too.
"""
import importlib.abc
import sys

from gc_detection import import_hooks

# The official.vision module whose import registers the stock experiments.
TRIGGER_MODULE = 'official.vision.registry_imports'


class _RegisterAfterExec(importlib.abc.Loader):
  """Runs the real loader, then imports gc_detection.model_garden.registry."""

  def __init__(self, loader):
    self._loader = loader

  def create_module(self, spec):
    return self._loader.create_module(spec)

  def exec_module(self, module):
    self._loader.exec_module(module)
    import gc_detection.model_garden.registry  # pylint: disable=g-import-not-at-top,unused-import


class _RegistryImportHook(importlib.abc.MetaPathFinder):
  """Wraps the loader of TRIGGER_MODULE found by the other finders."""

  def find_spec(self, fullname, path, target=None):
    if fullname != TRIGGER_MODULE:
      return None
    return import_hooks.find_wrapped_spec(self, fullname, path, target,
                                          _RegisterAfterExec)


def install():
  """Installs the hook once (no-op when disabled or installed); registers at
  once if official.vision.registry_imports is already imported."""
  if not import_hooks.enabled():
    return
  if TRIGGER_MODULE in sys.modules:
    import gc_detection.model_garden.registry  # pylint: disable=g-import-not-at-top,unused-import
    return
  if not any(isinstance(finder, _RegistryImportHook) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegistryImportHook())


install()
