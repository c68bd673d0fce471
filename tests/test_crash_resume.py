"""SIGKILL during stock training: the restart resumes, nothing is left half-written.

One trial of benchmarks/crash_resume.py (which runs five or more): the kill
lands while the first run is building the model or inside its first block of
100 steps, the restart trains on to step 200.
"""
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO_ROOT

sys.path.insert(0, os.path.join(REPO_ROOT, 'benchmarks'))
import crash_resume  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_sigkill_then_restart_resumes_and_finishes(tmp_path):
  survived, lines = crash_resume.run_trials(
      trials=1, seed=3, num_steps=200, min_kill=25.0, max_kill=45.0,
      work_dir=str(tmp_path))
  assert survived == 1, lines
  assert lines[0].startswith('trial 1: survived: killed after'), lines
  final = tf.train.latest_checkpoint(str(tmp_path / 'trial_0'))
  reader = tf.train.load_checkpoint(final)
  assert reader.get_tensor('step/.ATTRIBUTES/VARIABLE_VALUE') == 200


def _fake_checkpoints(model_dir, values):
  weight = tf.Variable(0.0)
  step = tf.Variable(0, dtype=tf.int64)
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(step=step, weight=weight),
                                       model_dir, max_to_keep=5)
  for index, value in enumerate(values):
    step.assign(index * 100)
    weight.assign(value)
    manager.save()


def test_the_checks_catch_what_a_crash_could_leave(tmp_path):
  """The trial's checks fail on a NaN or a torn file and list stray files."""
  good = str(tmp_path / 'good')
  _fake_checkpoints(good, [1.0, 2.0])
  assert crash_resume.check_checkpoints(good) == ([(1, 0), (2, 100)], [])

  with_nan = str(tmp_path / 'nan')
  _fake_checkpoints(with_nan, [1.0, np.nan])
  with pytest.raises(crash_resume.TrialFailure, match='not finite'):
    crash_resume.check_checkpoints(with_nan)

  torn = str(tmp_path / 'torn')
  _fake_checkpoints(torn, [1.0, 2.0])
  data = [name for name in os.listdir(torn) if name.startswith('ckpt-2.data')][0]
  with open(os.path.join(torn, data), 'r+b') as data_file:
    data_file.truncate(2)
  with pytest.raises(crash_resume.TrialFailure, match='ckpt-2: unreadable'):
    crash_resume.check_checkpoints(torn)

  stray = str(tmp_path / 'stray')
  _fake_checkpoints(stray, [1.0])
  with open(os.path.join(stray, 'ckpt-9.index'), 'wb') as index_file:
    index_file.write(b'partial')
  assert crash_resume.check_checkpoints(stray) == ([(1, 0)], ['ckpt-9.index'])


@pytest.mark.parametrize('before,after', [
    ([], [(1, 0), (2, 100), (3, 200)]),                                 # killed while building
    ([(1, 0)], [(1, 0), (2, 0), (3, 100), (4, 200)]),                   # stock re-save of step 0
    ([(1, 0), (2, 100)], [(1, 0), (2, 100), (3, 200)]),
    ([(1, 0), (2, 100), (3, 200)], [(1, 0), (2, 100), (3, 200)]),       # finished before the kill
])
def test_a_restart_that_continues_passes(before, after):
  crash_resume.check_resumed(before, after, num_steps=200)


@pytest.mark.parametrize('before,after,message', [
    ([(1, 0), (2, 100)], [(1, 0), (2, 100), (3, 0), (4, 100), (5, 200)],
     'did not resume from step 100'),                                   # started over
    ([(1, 0)], [(1, 0), (2, 0), (3, 200)], 'resumed at step 100'),     # skipped a block
    ([(1, 0), (2, 100)], [(1, 0), (2, 100)], 'not at step 200'),       # stopped early
])
def test_a_restart_that_does_not_continue_fails(before, after, message):
  with pytest.raises(crash_resume.TrialFailure, match=message):
    crash_resume.check_resumed(before, after, num_steps=200)
