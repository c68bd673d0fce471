"""The far-cue segmentation benchmark, in its tiny form: the whole code path.

Both registered experiments train with Model Garden's own trainer and are
scored; the report's figures must be the ones the trainer wrote (read back
here from the event files with TensorFlow's own iterator), and the pictures
must show each strip as image, ground truth, stock and GC rows. Who wins is
benchmarks/far_cue_segmentation.py's business, not this test's.
"""
import glob
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import tensorflow as tf

from conftest import REPO_ROOT
from gc_detection.data import far_cue_strips

BENCHMARK = os.path.join(REPO_ROOT, 'benchmarks', 'far_cue_segmentation.py')


def _final_miou(model_dir):
  final = None
  for path in glob.glob(os.path.join(model_dir, 'validation', 'events.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == 'mIoU':
          final = max(final or (0, 0), (event.step, float(tf.make_ndarray(value.tensor))))
  return final


def test_the_quick_benchmark_trains_both_models_and_reports_their_scores(tmp_path):
  markdown = tmp_path / 'BENCHMARKS.md'
  markdown.write_text('# Benchmarks\n')
  plot, pictures = tmp_path / 'miou.png', tmp_path / 'masks.png'
  result = subprocess.run(
      [sys.executable, BENCHMARK, '--quick', f'--work_dir={tmp_path / "work"}',
       f'--markdown={markdown}', f'--plot={plot}', f'--pictures={pictures}'],
      capture_output=True, text=True, timeout=900, cwd=REPO_ROOT)
  assert result.returncode == 0, result.stderr[-4000:]
  text = markdown.read_text()
  assert '<!-- begin: far_cue_segmentation -->' in text
  assert 'GC - stock, mean mIoU over seeds' in text
  results = json.load(open(tmp_path / 'work' / 'results.json'))
  assert [run['model'] for run in results] == ['stock', 'gc']
  for run in results:
    step, miou = _final_miou(run['model_dir'])
    assert run['curve'][-1]['step'] == step == 2
    assert abs(run['curve'][-1]['mIoU'] - 100 * miou) < 1e-4
    row = next(line for line in text.splitlines()
               if line.startswith(f'| ResNet-50-FPN {"+ GC" if run["model"] == "gc" else "(stock)"} | 0 |'))
    assert f'| {100 * miou:.1f} |' in row
  assert Image.open(plot).format == 'PNG'
  spec = far_cue_strips.StripSpec()
  masks = np.asarray(Image.open(pictures))
  assert masks.shape[1] == spec.width
  # 4 strips x 4 rows (image, truth, stock, GC), with white gaps between them.
  assert masks.shape[0] >= 16 * spec.height
  # --report_only rebuilds the same section from results.json and run.json.
  again = tmp_path / 'AGAIN.md'
  again.write_text('# Benchmarks\n')
  result = subprocess.run(
      [sys.executable, BENCHMARK, '--report_only', f'--work_dir={tmp_path / "work"}',
       f'--markdown={again}', f'--plot={plot}', f'--pictures={pictures}'],
      capture_output=True, text=True, timeout=900, cwd=REPO_ROOT)
  assert result.returncode == 0, result.stderr[-4000:]
  assert again.read_text() == text
  # Run again in the same work_dir after the GC run "was interrupted": the
  # finished stock run is kept as it was, the GC run resumes from its
  # checkpoint, and its first attempt counts up to that checkpoint.
  work = tmp_path / 'work'
  os.remove(work / 'runs' / 'gc' / 'seed_0.finished.json')
  attempts_path = work / 'runs' / 'gc' / 'seed_0.attempts.json'
  attempts = json.load(open(attempts_path))
  del attempts[0]['seconds']
  attempts_path.write_text(json.dumps(attempts))
  result = subprocess.run(
      [sys.executable, BENCHMARK, '--quick', f'--work_dir={work}'],
      capture_output=True, text=True, timeout=900, cwd=REPO_ROOT)
  assert result.returncode == 0, result.stderr[-4000:]
  assert 'stock, seed 0: trained by an earlier invocation, kept' in result.stderr
  assert 'resuming after 1 interrupted attempt' in result.stderr
  resumed = json.load(open(work / 'results.json'))
  assert resumed[0] == dict(results[0], earlier_seconds=results[0]['train_seconds'])
  assert resumed[1]['attempts'] == 2
  assert resumed[1]['curve'][-1]['step'] == 2
  first = json.load(open(attempts_path))[0]
  assert first['interrupted']
  checkpoint = tf.train.latest_checkpoint(str(work / 'runs' / 'gc' / 'seed_0'))
  assert abs(first['started'] + first['seconds']
             - os.path.getmtime(checkpoint + '.index')) < 1e-3
  assert 'Resumed runs' in result.stdout
