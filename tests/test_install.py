"""The installed stack is the pinned one, and the package imports."""
import importlib.metadata
import os
import re
import subprocess

from packaging.requirements import Requirement

from conftest import REPO_ROOT
from conftest import run_python

# The stack this venv was installed from: tf220 for TensorFlow 2.20, else tf215.
STACK = 'tf220' if importlib.metadata.version('tensorflow').startswith('2.20.') else 'tf215'
STACK_FILE = os.path.join(REPO_ROOT, 'requirements', f'{STACK}.txt')


def _setup_py_section(section):
  """The section as setup.py reads it (its own parser, not a copy of it)."""
  namespace = {'__file__': os.path.join(REPO_ROOT, 'setup.py')}
  source = open(namespace['__file__']).read().split('\nsetup(\n')[0]
  exec(compile(source, 'setup.py', 'exec'), namespace)  # pylint: disable=exec-used
  return namespace['read_section'](STACK_FILE, section)


def _shell_section(which):
  """The section as scripts/setup.sh reads it (the awk in common.sh)."""
  out = subprocess.run(
      ['bash', '-c', f'source scripts/lib/common.sh && '
                     f'requirements_section {which} requirements/{STACK}.txt'],
      cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
  return out.split('\n')[:-1]


def test_setup_py_and_setup_sh_read_the_same_pins():
  every_installed = (_setup_py_section('direct') + _setup_py_section('test') +
                     _setup_py_section('locked'))
  assert _shell_section('all-but-no-deps') == every_installed
  assert _shell_section('no-deps') == _setup_py_section('no-deps')
  od_api, = _setup_py_section('no-deps')
  assert re.fullmatch(r'tf-object-detection-api==0\.1 --hash=sha256:[0-9a-f]{64}',
                      od_api)


def test_every_pinned_package_is_installed_at_its_pinned_version():
  mismatched = []
  for line in _shell_section('all-but-no-deps'):
    requirement = Requirement(line)
    installed = importlib.metadata.version(requirement.name)
    if not requirement.specifier.contains(installed, prereleases=True):
      mismatched.append(f'{requirement}: installed {installed}')
  assert not mismatched
  assert importlib.metadata.version('tf-object-detection-api') == '0.1'


def test_the_project_is_installed_editable_from_this_checkout():
  result = run_python(
      'import gc_detection, object_detection, os;'
      'print(os.path.dirname(gc_detection.__file__));'
      'print(os.path.dirname(object_detection.__file__))')
  assert result.returncode == 0, result.stderr
  package_dir, od_api_dir = result.stdout.split()
  assert package_dir == os.path.join(REPO_ROOT, 'gc_detection')
  assert 'site-packages' in od_api_dir


def test_importing_gc_detection_does_not_import_tensorflow():
  result = run_python('import sys, gc_detection; print("tensorflow" in sys.modules)')
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == 'False'


def test_every_script_parses_and_answers_help():
  # bash reads a script as it runs, so a quoting slip shows only when the run
  # reaches it (after an hour of training, for the demos); parse them all now.
  scripts = sorted(name for name in os.listdir(os.path.join(REPO_ROOT, 'scripts'))
                   if name.endswith('.sh'))
  assert {'demo.sh', 'segmentation_demo.sh', 'train.sh', 'test.sh'} <= set(scripts)
  for name in scripts + [os.path.join('lib', n) for n in ('common.sh', 'flags.sh')]:
    parsed = subprocess.run(['bash', '-n', os.path.join(REPO_ROOT, 'scripts', name)],
                            capture_output=True, text=True)
    assert parsed.returncode == 0, f'{name}: {parsed.stderr}'
  for name in ('demo.sh', 'segmentation_demo.sh'):
    shown = subprocess.run(['bash', os.path.join(REPO_ROOT, 'scripts', name), '--help'],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and 'Flags:' in shown.stdout, (name, shown.stderr)
