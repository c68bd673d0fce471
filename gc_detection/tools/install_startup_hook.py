"""Writes gc_detection_autoregister.pth into this environment's site-packages.

The .pth line imports gc_detection._autoregister when Python starts, unless
GC_DETECTION_AUTOREGISTER=0 (then nothing of gc_detection is imported); it is
skipped quietly if gc_detection is no longer installed. scripts/setup.sh runs this;
run it yourself after a plain `pip install` of gc_detection:

  python -m gc_detection.tools.install_startup_hook
"""
import os
import sys
import sysconfig

PTH_NAME = 'gc_detection_autoregister.pth'
# Checks GC_DETECTION_AUTOREGISTER itself, so that with it set to 0 nothing
# of gc_detection is imported at all.
PTH_LINE = (
    'import os; exec("if os.environ.get(\'GC_DETECTION_AUTOREGISTER\', \'1\')'
    '.strip().lower() not in (\'0\', \'false\', \'no\', \'off\'):\\n'
    ' try:\\n  import gc_detection._autoregister\\n except ImportError:\\n  pass")\n')


def install(site_packages=None):
  """Writes the .pth (atomically); returns its path."""
  site_packages = site_packages or sysconfig.get_paths()['purelib']
  path = os.path.join(site_packages, PTH_NAME)
  with open(path + '.tmp', 'w') as out:
    out.write(PTH_LINE)
  os.replace(path + '.tmp', path)
  return path


if __name__ == '__main__':
  print(f'wrote {install()}')
  sys.exit(0)
