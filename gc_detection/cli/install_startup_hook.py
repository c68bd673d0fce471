"""Writes gc_detection_autoregister.pth into this environment's site-packages.

The .pth line imports gc_detection.od_api.startup_hook and
gc_detection.model_garden.startup_hook when Python starts, unless
GC_DETECTION_AUTOREGISTER=0 (then nothing of gc_detection is imported); it is
skipped quietly if gc_detection is no longer installed. scripts/setup.sh runs this;
run it yourself after a plain `pip install` of gc_detection (and again after
changing the TensorFlow version of the environment):

  python -m gc_detection.cli.install_startup_hook

On TensorFlow >= 2.16 the .pth also sets TF_USE_LEGACY_KERAS=1 (unless the
environment already sets it), whatever GC_DETECTION_AUTOREGISTER says: there
`tf.keras` is Keras 3 unless that variable is set before TensorFlow is
imported, and the OD API needs tf.keras 2 (tf-keras) - without it
`import object_detection.builders.model_builder` fails with
`module 'keras._tf_keras.keras.layers' has no attribute 'experimental'`.
"""
import importlib.metadata
import os
import re
import sys
import sysconfig

PTH_NAME = 'gc_detection_autoregister.pth'
# Checks GC_DETECTION_AUTOREGISTER itself, so that with it set to 0 nothing
# of gc_detection is imported at all.
PTH_LINE = (
    'import os; exec("if os.environ.get(\'GC_DETECTION_AUTOREGISTER\', \'1\')'
    '.strip().lower() not in (\'0\', \'false\', \'no\', \'off\'):\\n'
    ' try:\\n  import gc_detection.od_api.startup_hook\\n'
    '  import gc_detection.model_garden.startup_hook\\n except ImportError:\\n  pass")\n')
# Prepended on TensorFlow >= 2.16 (Keras 3 is tf.keras there unless this is set).
LEGACY_KERAS_STATEMENT = "os.environ.setdefault('TF_USE_LEGACY_KERAS', '1'); "
_TENSORFLOW_DISTRIBUTIONS = ('tensorflow', 'tensorflow-cpu', 'tf-nightly')


def tensorflow_needs_legacy_keras():
  """True when the installed TensorFlow (>= 2.16) makes Keras 3 its tf.keras."""
  for name in _TENSORFLOW_DISTRIBUTIONS:
    try:
      version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      continue
    match = re.match(r'(\d+)\.(\d+)', version)
    return bool(match) and tuple(map(int, match.groups())) >= (2, 16)
  return False


def pth_line(legacy_keras=None):
  """The .pth line; sets TF_USE_LEGACY_KERAS first when legacy_keras (default:
  when the installed TensorFlow needs it)."""
  if legacy_keras is None:
    legacy_keras = tensorflow_needs_legacy_keras()
  if not legacy_keras:
    return PTH_LINE
  return PTH_LINE.replace('import os; ', 'import os; ' + LEGACY_KERAS_STATEMENT, 1)


def install(site_packages=None):
  """Writes the .pth (atomically); returns its path."""
  site_packages = site_packages or sysconfig.get_paths()['purelib']
  path = os.path.join(site_packages, PTH_NAME)
  with open(path + '.tmp', 'w') as out:
    out.write(pth_line())
  os.replace(path + '.tmp', path)
  return path


if __name__ == '__main__':
  print(f'wrote {install()}')
  sys.exit(0)
