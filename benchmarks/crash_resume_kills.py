"""When and how a crash trial (benchmarks/crash_resume.py) kills the stock trainer.

A seeded schedule of kill moments (KillPlan), a poller of the trainer's
model_dir (ModelDirWatcher: checkpoints listed, saves in progress) and the
loop that starts the trainer and sends SIGKILL to its process group when the
plan's moment is due.
"""
import dataclasses
import os
import random
import re
import signal
import subprocess
import time
from typing import Optional

# benchmarks/ is on sys.path when run as a script.
from crash_resume_checks import CHECKPOINT_EVERY_N, STEP_KEY, TrialFailure, listed_checkpoints

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KILL_MODES = ('before_first_checkpoint', 'after_checkpoint', 'mid_iteration', 'during_save')
POLL_SECONDS = 0.005
TRIAL_TIMEOUT_SECONDS = 1800


@dataclasses.dataclass
class KillPlan:
  """When one trial kills the trainer.

  mode: one of KILL_MODES.
  parameter: before_first_checkpoint: seconds after the start;
    after_checkpoint: seconds after the target checkpoint is listed;
    mid_iteration: fraction of the previous iteration's duration; during_save:
    unused.
  target_step: the non-zero checkpoint step the kill is placed after (None
    for before_first_checkpoint).
  """
  mode: str
  parameter: float
  target_step: Optional[int] = None

  def describe(self):
    if self.mode == 'before_first_checkpoint':
      return f'at {self.parameter:.1f} s or at the first checkpoint'
    if self.mode == 'after_checkpoint':
      return f'{self.parameter:.2f} s after the step-{self.target_step} checkpoint'
    if self.mode == 'mid_iteration':
      return (f'{self.parameter:.0%} into iteration {self.target_step}->'
              f'{self.target_step + CHECKPOINT_EVERY_N}')
    return f'while the checkpoint after step {self.target_step} is written'


def kill_schedule(trials, seed, num_steps, min_kill, max_kill, modes=KILL_MODES):
  """[KillPlan] for `trials` trials, deterministic in `seed`.

  The modes come in seeded random permutations of `modes`, one after the
  other, so every mode occurs once in each run of len(modes) trials.
  """
  unknown = sorted(set(modes) - set(KILL_MODES))
  if unknown or not modes:
    raise ValueError(f'kill modes: expected some of {KILL_MODES}, got {list(modes)}')
  if num_steps % CHECKPOINT_EVERY_N or num_steps < 2 * CHECKPOINT_EVERY_N:
    raise ValueError(f'num_steps: expected a multiple of {CHECKPOINT_EVERY_N} of at '
                     f'least {2 * CHECKPOINT_EVERY_N}, got {num_steps}')
  rng = random.Random(seed)
  order = []
  while len(order) < trials:
    permutation = list(modes)
    rng.shuffle(permutation)
    order += permutation
  plans = []
  for mode in order[:trials]:
    target = rng.randrange(CHECKPOINT_EVERY_N, num_steps, CHECKPOINT_EVERY_N)
    if mode == 'before_first_checkpoint':
      plans.append(KillPlan(mode, rng.uniform(min_kill, max_kill)))
    elif mode == 'after_checkpoint':
      plans.append(KillPlan(mode, rng.uniform(0.0, 0.5), target))
    elif mode == 'mid_iteration':
      plans.append(KillPlan(mode, rng.uniform(0.10, 0.60), target))
    else:
      plans.append(KillPlan(mode, 0.0, target))
  return plans


class ModelDirWatcher:
  """Follows a trainer's model_dir by polling: checkpoints listed, saves in progress."""

  def __init__(self, model_dir):
    self.model_dir = model_dir
    self.arrivals = {}  # checkpoint step -> seconds when first seen listed
    self.numbers = {}  # checkpoint step -> checkpoint number
    self._state_signature = None

  def poll(self, now):
    """Updates the listed checkpoints; returns the names of a save in progress."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    # The state file first, then the directory: a `checkpoint.tmp*` seen
    # afterwards belongs to a later save than every checkpoint listed.
    state = os.path.join(self.model_dir, 'checkpoint')
    try:
      stat = os.stat(state)
      signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    except FileNotFoundError:
      signature = None
    if signature is not None and signature != self._state_signature:
      self._state_signature = signature
      for number, path in listed_checkpoints(self.model_dir):
        if number not in self.numbers.values():
          step = int(tf.train.load_checkpoint(path).get_tensor(STEP_KEY))
          self.arrivals.setdefault(step, now)
          self.numbers.setdefault(step, number)
    try:
      names = os.listdir(self.model_dir)
    except FileNotFoundError:
      return []
    newest = max(self.numbers.values(), default=0)
    saving = []
    for name in names:
      match = re.match(r'ckpt-(\d+)(_temp|\.index|\.data-\d+-of-\d+)$', name)
      if (match and int(match.group(1)) > newest) or name.startswith('checkpoint.tmp'):
        saving.append(name)
    return sorted(saving)

  def latest_step(self):
    return max(self.arrivals, default=None)

  def timeline(self):
    """The checkpoints seen listed, as 'step @ seconds' in order."""
    return ', '.join(f'{step} @ {seconds:.0f} s'
                     for step, seconds in sorted(self.arrivals.items()))

  def progress(self, now, saving, num_steps):
    """Where training was at `now`, in words."""
    latest = self.latest_step()
    if saving:
      after = (f'after the step-{latest} checkpoint' if latest is not None else
               'before any checkpoint was listed')
      return f'while a checkpoint was being written ({", ".join(saving)}), {after}'
    if latest is None:
      started = os.path.isdir(os.path.join(self.model_dir, 'train'))
      return ('before the first checkpoint, the trainer building its model' if started
              else 'before the first checkpoint, the trainer starting up')
    since = now - self.arrivals[latest]
    if latest >= num_steps:
      return f'{since:.1f} s after the final (step-{latest}) checkpoint, as the trainer exited'
    text = f'{since:.1f} s after the step-{latest} checkpoint'
    previous = self.arrivals.get(latest - CHECKPOINT_EVERY_N)
    if previous is not None:
      text += (f', ~{since / (self.arrivals[latest] - previous):.0%} into iteration '
               f'{latest}->{latest + CHECKPOINT_EVERY_N}')
    return text


def _due(plan, watcher, now, saving):
  """Whether the kill of `plan` is due now."""
  if plan.mode == 'before_first_checkpoint':
    return now >= plan.parameter or watcher.latest_step() is not None
  target = plan.target_step
  arrived = watcher.arrivals.get(target)
  if arrived is None:
    return False
  later = [step for step in watcher.arrivals if step > target]
  if plan.mode == 'after_checkpoint':
    return now >= arrived + plan.parameter or bool(later)
  if plan.mode == 'mid_iteration':
    previous = watcher.arrivals.get(target - CHECKPOINT_EVERY_N, 0.0)
    return now >= arrived + plan.parameter * (arrived - previous) or bool(later)
  return bool(saving) or bool(later)


def _kill_group(process):
  """SIGKILL to the process group of `process`; waits until every member is gone."""
  os.killpg(process.pid, signal.SIGKILL)
  process.wait()
  deadline = time.monotonic() + 60
  while time.monotonic() < deadline:
    try:
      os.killpg(process.pid, 0)
    except ProcessLookupError:
      return
    time.sleep(0.05)
  raise TrialFailure(f'process group {process.pid} still alive 60 s after SIGKILL')


def run_until_kill(command, model_dir, plan, num_steps, log_file, result):
  """Starts the trainer and kills it when `plan` says; fills in `result`."""
  watcher = ModelDirWatcher(model_dir)
  started = time.perf_counter()
  process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log_file,
                             stderr=subprocess.STDOUT, start_new_session=True)
  try:
    while True:
      now = time.perf_counter() - started
      saving = watcher.poll(now)
      if process.poll() is not None:
        result.kill_seconds = now
        result.progress = watcher.progress(now, saving, num_steps)
        result.timeline = watcher.timeline()
        if process.returncode != 0:
          raise TrialFailure(f'the first run exited with {process.returncode} before '
                             f'the kill; see {log_file.name}')
        return
      if _due(plan, watcher, now, saving):
        _kill_group(process)
        result.killed = True
        result.kill_seconds = now
        result.progress = watcher.progress(now, saving, num_steps)
        result.timeline = watcher.timeline()
        return
      if now > TRIAL_TIMEOUT_SECONDS:
        raise TrialFailure(f'no kill moment ({plan.describe()}) within '
                           f'{TRIAL_TIMEOUT_SECONDS} s; see {log_file.name}')
      time.sleep(POLL_SECONDS)
  finally:
    if process.poll() is None:
      _kill_group(process)
