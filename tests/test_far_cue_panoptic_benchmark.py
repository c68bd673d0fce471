"""The far-cue panoptic benchmark's report, from results of known values.

The training path (benchmarks/model_garden_runs.py) is the far-cue
segmentation benchmark's, run by its quick test; the panoptic trainer,
evaluation and pictures run in tests/test_model_garden_panoptic.py. Here the
report must put the results' own numbers in the table and compute the mean
gain and verdict as the arithmetic below does.
"""
import os
import sys

import pytest

from conftest import REPO_ROOT

sys.path.insert(0, os.path.join(REPO_ROOT, 'benchmarks'))
import far_cue_panoptic  # pylint: disable=g-import-not-at-top,wrong-import-position


def _run(model, seed, pq_by_step, detection=(10.0, 5.0)):
  curve = [{'step': step, 'PQ': pq, 'SQ': 70.0 + seed, 'RQ': pq / 0.7, 'PQ_st': pq + 1,
            'PQ_th': pq - 1, 'AP': detection[0], 'mask_AP': detection[1]}
           for step, pq in pq_by_step]
  return {'model': model, 'seed': seed, 'train_seconds': 600.0, 'curve': curve,
          'model_dir': f'/runs/{model}/{seed}'}


SETTINGS = {'command': '--seeds=0,1', 'num_train': 400, 'num_val': 100, 'data_seed': 0,
            'spec': {'height': 64, 'width': 512, 'min_cue_distance': 352},
            'num_steps': 600, 'batch_size': 4, 'input_size': [64, 512, 3],
            'load_average': None}


@pytest.mark.parametrize('gc_final,verdict', [(34.0, 'MET'), (30.5, 'MISSED')])
def test_the_report_tabulates_the_runs_and_the_mean_pq_gain(gc_final, verdict):
  results = [_run('stock', 0, [(300, 25.0), (600, 28.0)]),
             _run('gc', 0, [(300, 30.0), (600, gc_final)]),
             _run('stock', 1, [(300, 27.0), (600, 30.0)]),
             _run('gc', 1, [(300, 33.0), (600, gc_final + 2)])]
  text, gain = far_cue_panoptic.report(results, SETTINGS, 3600.0, None, None)
  expected_gain = ((gc_final + gc_final + 2) / 2) - (28.0 + 30.0) / 2
  assert gain == pytest.approx(expected_gain)
  assert f'**{expected_gain:+.1f}** (target >= 3: {verdict})' in text
  stock_row = next(line for line in text.splitlines()
                   if line.startswith('| Panoptic FPN R-50 (stock) | 1 |'))
  # step, PQ, SQ, RQ, PQ_st, PQ_th, AP, mask AP, best PQ (step), train min
  assert stock_row.split('|')[3:13] == [
      ' 600 ', ' 30.0 ', ' 71.0 ', f' {30.0 / 0.7:.1f} ', ' 31.0 ', ' 29.0 ', ' 10.0 ',
      ' 5.0 ', ' 30.0 (600) ', ' 10.0 ']
  mean_row = next(line for line in text.splitlines()
                  if line.startswith('| **Panoptic FPN R-50 + GC, mean** |'))
  assert f'**{gc_final + 1:.1f}**' in mean_row
  assert 'wall time 60.0 min' in text


def test_a_run_that_falls_from_its_best_is_named():
  results = [_run('stock', 0, [(300, 25.0), (600, 24.0)]),
             _run('gc', 0, [(300, 40.0), (600, 30.0)])]
  text, _ = far_cue_panoptic.report(results, SETTINGS, 60.0, None, None)
  assert 'Panoptic FPN R-50 + GC, seed 0: its last evaluation (step 600) is 10.0 PQ' in text
