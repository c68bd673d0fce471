"""What both adapters' start-up hooks share: the on/off switch and the finder step.

Each adapter's start-up hook (gc_detection.od_api.startup_hook,
gc_detection.model_garden.startup_hook) is a sys.meta_path finder that lets the
other finders find a watched module and wraps its loader. No framework and no
TensorFlow import here: this runs when Python starts.
"""
import os
import sys

ENVIRONMENT_VARIABLE = 'GC_DETECTION_AUTOREGISTER'


def enabled():
  """False when GC_DETECTION_AUTOREGISTER is 0, false, no or off."""
  return os.environ.get(ENVIRONMENT_VARIABLE, '1').strip().lower() not in (
      '0', 'false', 'no', 'off')


def find_wrapped_spec(hook, fullname, path, target, wrap_loader):
  """The spec the finders after `hook` give for fullname, its loader wrapped.

  Args:
    hook: the calling finder (skipped, so it does not find itself).
    wrap_loader: loader -> the loader to use instead.
  """
  for finder in sys.meta_path:
    if finder is hook or not hasattr(finder, 'find_spec'):
      continue
    spec = finder.find_spec(fullname, path, target)
    if spec is not None:
      if spec.loader is not None:
        spec.loader = wrap_loader(spec.loader)
      return spec
  return None
