"""Start-up hook: gc_detection joins the OD API when the OD API is imported.

The venv's site-packages holds `gc_detection_autoregister.pth` (written by
`python -m gc_detection.cli.install_startup_hook`, which scripts/setup.sh
runs), whose one line imports this module when Python starts, unless
GC_DETECTION_AUTOREGISTER=0. This module only installs an import hook (no
TensorFlow import): right after one of the OD API modules of
gc_detection.od_api.touch_points.TRIGGER_MODULES finishes importing,
touch_points.apply changes it. So `python -m object_detection.model_main_tf2`
and `python -m object_detection.exporter_main_v2` know the GC types with no
change to OD API files, and parsing a GC pipeline.config works as soon as
`object_detection.protos.pipeline_pb2` is imported.

The compatibility shims (gc_detection.od_api.compat) are applied right
*before* any of those modules, or of touch_points.COMPAT_MODULES, runs: on
TensorFlow >= 2.16 the OD API's `inputs` and `model_lib` cannot even be
imported without them.

`import gc_detection` installs the same hook limited to the GC extension
(`watch_extension`), whatever GC_DETECTION_AUTOREGISTER says.
"""
import importlib.abc
import sys

from gc_detection import import_hooks
from gc_detection.od_api import touch_points

ENVIRONMENT_VARIABLE = import_hooks.ENVIRONMENT_VARIABLE


class _ChangeAfterExec(importlib.abc.Loader):
  """Applies the shims, runs the real loader, then the module's touch points."""

  def __init__(self, loader, register):
    self._loader = loader
    self._register = register

  def create_module(self, spec):
    return self._loader.create_module(spec)

  def exec_module(self, module):
    name = module.__name__
    if self._register and name != touch_points.PIPELINE_PROTO_MODULE:
      from gc_detection.od_api import compat  # pylint: disable=g-import-not-at-top
      compat.apply()
    self._loader.exec_module(module)
    if name == touch_points.PIPELINE_PROTO_MODULE:
      touch_points.import_extension()
    elif self._register and name in touch_points.TRIGGER_MODULES:
      touch_points.apply(name)


class _OdApiImportHook(importlib.abc.MetaPathFinder):
  """Finds watched modules through the other finders and wraps their loader.

  register: apply the touch points (else only import the GC extension after
  pipeline_pb2).
  """

  def __init__(self, register):
    self.register = register

  def _watches(self, fullname):
    if fullname == touch_points.PIPELINE_PROTO_MODULE:
      return True
    return self.register and (fullname in touch_points.TRIGGER_MODULES or
                              fullname in touch_points.COMPAT_MODULES)

  def find_spec(self, fullname, path, target=None):
    if not self._watches(fullname):
      return None
    return import_hooks.find_wrapped_spec(
        self, fullname, path, target,
        lambda loader: _ChangeAfterExec(loader, self.register))


enabled = import_hooks.enabled


def _installed():
  return next((finder for finder in sys.meta_path
               if isinstance(finder, _OdApiImportHook)), None)


def install():
  """Installs the import hook once (no-op when disabled or installed)."""
  hook = _installed()
  if not enabled():
    return
  if hook is None:
    sys.meta_path.insert(0, _OdApiImportHook(register=True))
  else:
    hook.register = True


def watch_extension():
  """Makes the GC extension parseable: now if pipeline_pb2 is imported, else
  right after it is."""
  if touch_points.PIPELINE_PROTO_MODULE in sys.modules:
    touch_points.import_extension()
  elif _installed() is None:
    sys.meta_path.insert(0, _OdApiImportHook(register=False))


install()
