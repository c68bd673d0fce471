"""SIGKILL during stock training: the restart resumes, nothing is left half-written.

One trial of benchmarks/crash_resume.py (which runs five or more, at moments
tied to training progress, through scripts/train.sh): the kill lands right
after the first non-zero checkpoint (step 100) is listed, while the trainer
is already in its next iteration (of the stock train_loop); the restart must
go on from step 100, not from step 0, to step 200. The trial runs the stock
model_main_tf2 directly (what train.sh runs for a one-phase config), sparing
the two train.sh start-ups (set-up check and phase plan, 15-30 s each here).
The other tests check the benchmark's checks, kill schedule, model_dir poller
and report on fakes.
"""
import dataclasses
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO_ROOT

sys.path.insert(0, os.path.join(REPO_ROOT, 'benchmarks'))
# pylint: disable=g-import-not-at-top,wrong-import-position
import crash_resume
import crash_resume_checks
import crash_resume_kills
# pylint: enable=g-import-not-at-top,wrong-import-position


def test_sigkill_after_a_nonzero_checkpoint_then_restart_resumes_from_it(tmp_path):
  results = crash_resume.run_trials(
      trials=1, seed=3, num_steps=200, min_kill=5.0, max_kill=40.0,
      work_dir=str(tmp_path), modes=('after_checkpoint',), trainer='model_main_tf2')
  result = results[0]
  assert result.survived, result.summary()
  assert result.killed, f'the trainer finished before the kill: {result.summary()}'
  # The kill came after step 100 was listed, before step 200 was.
  assert result.latest_step_at_kill == 100, result.summary()
  assert [step for _, step in result.listed_at_kill] == [0, 100], result.summary()
  model_dir = str(tmp_path / 'trial_0')
  steps = []
  for number, path in crash_resume_checks.listed_checkpoints(model_dir):
    steps.append((number, int(tf.train.load_checkpoint(path).get_tensor(
        crash_resume_checks.STEP_KEY))))
  # The restart restored step 100 and saved only step 200: a restart from
  # step 0 would have saved step 0 (or 100) again.
  assert steps == [(1, 0), (2, 100), (3, 200)], (
      f'checkpoints (number, step) after the restart: {steps}; expected the '
      f'restart to add only ckpt-3 at step 200')
  # run_trial found the same in the restart's own loss summaries (one iteration,
  # logged at step 200).
  assert result.resumed_from == 100 and result.final_step == 200, result.summary()


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
  assert crash_resume_checks.check_checkpoints(good) == ([(1, 0), (2, 100)], [])

  with_nan = str(tmp_path / 'nan')
  _fake_checkpoints(with_nan, [1.0, np.nan])
  with pytest.raises(crash_resume_checks.TrialFailure, match='not finite'):
    crash_resume_checks.check_checkpoints(with_nan)

  torn = str(tmp_path / 'torn')
  _fake_checkpoints(torn, [1.0, 2.0])
  data = [name for name in os.listdir(torn) if name.startswith('ckpt-2.data')][0]
  with open(os.path.join(torn, data), 'r+b') as data_file:
    data_file.truncate(2)
  with pytest.raises(crash_resume_checks.TrialFailure, match='ckpt-2: unreadable'):
    crash_resume_checks.check_checkpoints(torn)

  stray = str(tmp_path / 'stray')
  _fake_checkpoints(stray, [1.0])
  with open(os.path.join(stray, 'ckpt-9.index'), 'wb') as index_file:
    index_file.write(b'partial')
  assert crash_resume_checks.check_checkpoints(stray) == ([(1, 0)], ['ckpt-9.index'])


@pytest.mark.parametrize('before,after', [
    ([], [(1, 0), (2, 100), (3, 200)]),                                 # killed while building
    ([(1, 0)], [(1, 0), (2, 0), (3, 100), (4, 200)]),                   # stock re-save of step 0
    ([(1, 0), (2, 100)], [(1, 0), (2, 100), (3, 200)]),
    ([(1, 0), (2, 100), (3, 200)], [(1, 0), (2, 100), (3, 200)]),       # finished before the kill
])
def test_a_restart_that_continues_passes(before, after):
  crash_resume_checks.check_resumed(before, after, num_steps=200)


@pytest.mark.parametrize('before,after,message', [
    ([(1, 0), (2, 100)], [(1, 0), (2, 100), (3, 0), (4, 100), (5, 200)],
     'did not resume from step 100'),                                   # started over
    ([(1, 0)], [(1, 0), (2, 0), (3, 200)], 'resumed at step 100'),     # skipped an iteration
    ([(1, 0), (2, 100)], [(1, 0), (2, 100)], 'not at step 200'),       # stopped early
])
def test_a_restart_that_does_not_continue_fails(before, after, message):
  with pytest.raises(crash_resume_checks.TrialFailure, match=message):
    crash_resume_checks.check_resumed(before, after, num_steps=200)


def test_a_restart_that_saves_the_latest_step_again_fails():
  with pytest.raises(crash_resume_checks.TrialFailure, match='saved step 200 again'):
    crash_resume_checks.check_resumed([(1, 0), (2, 100), (3, 200)],
                               [(1, 0), (2, 100), (3, 200), (4, 200)], num_steps=200)


def test_kill_schedule_is_seeded_and_mostly_after_a_nonzero_checkpoint():
  for seed in range(20):
    plans = crash_resume_kills.kill_schedule(5, seed, 200, 5.0, 40.0)
    assert plans == crash_resume_kills.kill_schedule(5, seed, 200, 5.0, 40.0)
    modes = [plan.mode for plan in plans]
    assert set(modes) == set(crash_resume_kills.KILL_MODES), modes
    assert sum(mode != 'before_first_checkpoint' for mode in modes) >= 3, modes
    for plan in plans:
      if plan.mode == 'before_first_checkpoint':
        assert 5.0 <= plan.parameter <= 40.0 and plan.target_step is None
      else:
        assert plan.target_step == 100, plan  # the one non-zero step below 200
  assert crash_resume_kills.kill_schedule(
      5, 0, 200, 5.0, 40.0) != crash_resume_kills.kill_schedule(5, 1, 200, 5.0, 40.0)
  targets = {plan.target_step for plan in crash_resume_kills.kill_schedule(
      40, 0, 500, 5.0, 40.0, modes=('mid_iteration',))}
  assert targets == {100, 200, 300, 400}
  with pytest.raises(ValueError, match='kill modes'):
    crash_resume_kills.kill_schedule(1, 0, 200, 5.0, 40.0, modes=('sometime',))
  with pytest.raises(ValueError, match='num_steps'):
    crash_resume_kills.kill_schedule(1, 0, 150, 5.0, 40.0)


def test_the_poller_follows_checkpoints_and_sees_a_save_in_progress(tmp_path):
  model_dir = str(tmp_path / 'model_dir')
  os.makedirs(model_dir)
  watcher = crash_resume_kills.ModelDirWatcher(model_dir)
  assert watcher.poll(1.0) == [] and watcher.latest_step() is None
  assert 'before the first checkpoint' in watcher.progress(1.0, [], 200)
  _fake_checkpoints(model_dir, [1.0, 2.0])
  assert watcher.poll(2.0) == []
  assert watcher.arrivals == {0: 2.0, 100: 2.0} and watcher.latest_step() == 100
  assert watcher.timeline() == '0 @ 2 s, 100 @ 2 s'
  plan = crash_resume_kills.KillPlan('during_save', 0.0, 100)
  assert not crash_resume_kills._due(plan, watcher, 2.5, [])  # pylint: disable=protected-access
  os.makedirs(os.path.join(model_dir, 'ckpt-3_temp'))
  saving = watcher.poll(3.0)
  assert saving == ['ckpt-3_temp']
  assert crash_resume_kills._due(plan, watcher, 3.0, saving)  # pylint: disable=protected-access
  assert 'while a checkpoint was being written (ckpt-3_temp)' in watcher.progress(
      3.0, saving, 200)
  # A listed checkpoint's own files are not a save in progress.
  os.rmdir(os.path.join(model_dir, 'ckpt-3_temp'))
  assert watcher.poll(3.1) == []
  mid = crash_resume_kills.KillPlan('mid_iteration', 0.5, 100)
  watcher.arrivals = {0: 10.0, 100: 30.0}
  assert not crash_resume_kills._due(mid, watcher, 39.0, [])  # pylint: disable=protected-access
  assert crash_resume_kills._due(mid, watcher, 40.0, [])  # pylint: disable=protected-access
  assert watcher.progress(40.0, [], 200) == (
      '10.0 s after the step-100 checkpoint, ~50% into iteration 100->200')


def test_report_has_one_row_per_trial_and_the_count():
  plans = crash_resume_kills.kill_schedule(2, 0, 200, 5.0, 40.0,
                                     modes=('after_checkpoint', 'during_save'))
  survived = crash_resume.TrialResult(
      0, plans[0], killed=True, kill_seconds=140.2, progress='0.3 s after the step-100 '
      'checkpoint', timeline='0 @ 58 s, 100 @ 139 s', latest_step_at_kill=100,
      resumed_from=100, final_step=200,
      survived=True, seconds=300.0)
  failed = crash_resume.TrialResult(
      1, plans[1], killed=True, kill_seconds=220.0, progress='while a checkpoint was '
      'being written (ckpt-3_temp), after the step-100 checkpoint',
      latest_step_at_kill=100, failure='the restart exited with 1', seconds=200.0)
  text = crash_resume.report([survived, failed], {'command': '--trials=2',
                                                  'num_steps': 200,
                                                  'trainer': 'scripts/train.sh'}, 600.0)
  assert '`benchmarks/crash_resume.py --trials=2`' in text and '| CPU |' in text
  rows = [line for line in text.splitlines() if line.startswith('| 1 |') or
          line.startswith('| 2 |')]
  assert len(rows) == 2, text
  assert '| 140.2 |' in rows[0] and '| 100 | 100 | 200 | yes |' in rows[0], rows[0]
  assert '| 0 @ 58 s, 100 @ 139 s |' in rows[0], rows[0]
  assert '**no**: the restart exited with 1' in rows[1], rows[1]
  assert survived.resumes_mid_run(200) and not dataclasses.replace(
      survived, latest_step_at_kill=200).resumes_mid_run(200)
  assert ('**1 of 2 trials survived**; 2 of the 2 kills landed after a non-zero '
          'checkpoint and before step 200') in text
