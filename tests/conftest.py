"""Shared test set-up: quiet TensorFlow, the checkout's paths, subprocess helpers."""
import os
import subprocess
import sys

import pytest

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# scripts/*.sh (run by some tests) use the venv running the tests, not .venv.
os.environ.setdefault('GC_VENV', sys.prefix)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# dev/: repository maintenance (config writers, proto compiler) outside the package.
sys.path.insert(0, os.path.join(REPO_ROOT, 'dev'))
BASELINE_CONFIG = os.path.join(
    REPO_ROOT, 'pipeline_configs', 'faster_rcnn_resnet50_v1_600x1024_coco.config')


@pytest.fixture
def repo_root():
  return REPO_ROOT


def run_python(code_or_args, timeout=600, cwd=REPO_ROOT, env=None):
  """Runs the venv's Python in a fresh process; returns CompletedProcess.

  `code_or_args` is either source code (str) or a list of arguments; `env`
  adds to (or overrides) this process's environment.
  """
  args = ['-c', code_or_args] if isinstance(code_or_args, str) else code_or_args
  return subprocess.run([sys.executable] + args, capture_output=True, text=True,
                        timeout=timeout, cwd=cwd, env=dict(os.environ, **(env or {})))


def run_script(name, *args, timeout=600):
  """Runs scripts/<name> with bash from the checkout; returns CompletedProcess."""
  return subprocess.run(['bash', os.path.join(REPO_ROOT, 'scripts', name), *args],
                        capture_output=True, text=True, cwd=REPO_ROOT, timeout=timeout)
