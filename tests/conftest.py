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


_SERVE_WITHOUT_GC_DETECTION = r'''
import importlib.abc, json, sys
class Refuse(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path, target=None):
    if name.split('.')[0] == 'gc_detection':
      raise ImportError('gc_detection is blocked in this process')
sys.meta_path.insert(0, Refuse())
import numpy as np, tensorflow as tf
saved_model, images_path, out = sys.argv[1:4]
served = tf.saved_model.load(saved_model).signatures['serving_default'](
    tf.constant(np.load(images_path)))
json.dump({'outputs': {name: value.numpy().tolist() for name, value in served.items()},
           'gc_detection_imported': any(m.split('.')[0] == 'gc_detection'
                                        for m in sys.modules)}, open(out, 'w'))
'''


def serve_without_gc_detection(saved_model_dir, images, work_dir):
  """Serves images with a SavedModel in a fresh process that cannot import gc_detection.

  Args:
    saved_model_dir: the SavedModel; its `serving_default` signature is called.
    images: the signature's input array.
    work_dir: where the images and the outputs pass through.
  Returns:
    {output name: np.ndarray}. Fails the test if the process fails or
    imported gc_detection anyway.
  """
  import json  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  images_path = os.path.join(work_dir, 'served_images.npy')
  served_path = os.path.join(work_dir, 'served.json')
  np.save(images_path, images)
  result = run_python(['-c', _SERVE_WITHOUT_GC_DETECTION, saved_model_dir, images_path,
                       served_path], env={'GC_DETECTION_AUTOREGISTER': '0'})
  assert result.returncode == 0, result.stderr[-4000:]
  with open(served_path) as served_file:
    served = json.load(served_file)
  assert not served['gc_detection_imported']
  return {name: np.array(value) for name, value in served['outputs'].items()}


def summary_scalars(model_dir, split):
  """{tag: last value} of the one-number summaries in model_dir/split (TF's own reader)."""
  import glob  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  scalars = {}
  for path in glob.glob(os.path.join(model_dir, split, 'events.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        array = tf.make_ndarray(value.tensor)
        if array.size == 1:
          scalars[value.tag] = float(array)
  return scalars
