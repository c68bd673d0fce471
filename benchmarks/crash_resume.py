r"""Kills the stock trainer with SIGKILL at moments tied to its progress; checks every restart.

Each trial trains a tiny Faster R-CNN + GC (64 px, generated data, a
generated detection checkpoint to fine-tune from) with `scripts/train.sh`,
i.e. the OD API's own model_main_tf2, in a fresh model_dir:

1. starts training to `--num_steps` while polling model_dir (the
   `checkpoint` state file, the step of every checkpoint it lists, and the
   temporary files of a save in progress), and sends SIGKILL to the whole
   process group at the trial's kill moment, one of
   - `before_first_checkpoint`: a random delay (uniform between
     `--min_kill_seconds` and `--max_kill_seconds`) after the start, or the
     moment the first (step-0) checkpoint is listed if that comes first;
   - `after_checkpoint`: right after a non-zero checkpoint (a step picked at
     random among 100, 200, ... below num_steps) is listed (0-0.5 s later);
   - `mid_block`: inside the block of 100 steps after that checkpoint, at a
     random 10-60% of the duration of the block before it (which, for the
     first block, includes tracing the training loop: the next block is
     faster);
   - `during_save`: while the next checkpoint after that one is being
     written (its `ckpt-N_temp/`, unlisted `ckpt-N.*` or `checkpoint.tmp*`
     files seen);
   the trials cycle through seeded random permutations of these four (or of
   `--kill_modes`), so every `--seed` gives the same schedule and, with all
   four modes and 5 trials, at least 3 kills meant to land after a non-zero
   checkpoint and before the last one (the restart then resumes from a step
   > 0; the report counts where the kills really landed);
2. checks model_dir: every checkpoint the `checkpoint` state file lists
   reads back completely (every tensor) and holds finite weights, at steps
   that are multiples of 100 in order; checkpoint files the state does not
   list (a save cut short) are reported;
3. restarts training and lets it finish, then checks that it resumed where
   the latest checkpoint was (no new step-0 checkpoint, checkpoint steps
   continue from the latest one, and the restart's own loss summaries start
   one block after it), that the final step is num_steps, that the final
   weights are finite and that no unlisted checkpoint file is left
   (TensorFlow's own <prefix>_temp directory of a cut save excepted).

A trial survives when every check passes. Prints one line per trial and the
survived / tried count; exits 1 if any trial failed. With --markdown, writes
the "crash_resume" section of that file (command, machine, one row per trial).

Usage (3-5 minutes per trial on 2 busy cores):
  .venv/bin/python benchmarks/crash_resume.py [--trials=5] [--seed=0] \
      [--markdown=BENCHMARKS.md] [--work_dir=DIR]
"""
import dataclasses
import glob
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from typing import List, Optional

from absl import app
from absl import flags

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKPOINT_EVERY_N = 100  # the stock trainer's block of steps
STEP_KEY = 'step/.ATTRIBUTES/VARIABLE_VALUE'
KILL_MODES = ('before_first_checkpoint', 'after_checkpoint', 'mid_block', 'during_save')
TRAINERS = ('train.sh', 'model_main_tf2')
POLL_SECONDS = 0.005
TRIAL_TIMEOUT_SECONDS = 1800
SECTION = 'crash_resume'


def _define_flags():
  flags.DEFINE_integer('trials', 5, 'Kill-and-restart trials.')
  flags.DEFINE_integer('seed', 0, 'Seed of the kill schedule.')
  flags.DEFINE_integer('num_steps', 200, 'Steps to train to (a multiple of 100, '
                       'at least 200).')
  flags.DEFINE_float('min_kill_seconds', 5.0, 'before_first_checkpoint: earliest '
                     'kill after the start.')
  flags.DEFINE_float('max_kill_seconds', 40.0, 'before_first_checkpoint: latest '
                     'kill after the start.')
  flags.DEFINE_list('kill_modes', list(KILL_MODES), 'Kill moments to cycle through.')
  flags.DEFINE_enum('trainer', 'train.sh', TRAINERS, 'What each run starts: '
                    'scripts/train.sh or python -m object_detection.model_main_tf2.')
  flags.DEFINE_string('work_dir', None, 'Where trials run (default: a temp dir).')
  flags.DEFINE_string('markdown', None, 'Rewrite the "crash_resume" section of this file.')


class TrialFailure(AssertionError):
  """A check of a crash trial failed."""


@dataclasses.dataclass
class KillPlan:
  """When one trial kills the trainer.

  mode: one of KILL_MODES.
  parameter: before_first_checkpoint: seconds after the start;
    after_checkpoint: seconds after the target checkpoint is listed;
    mid_block: fraction of the previous block's duration; during_save: unused.
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
    if self.mode == 'mid_block':
      return (f'{self.parameter:.0%} into block {self.target_step}->'
              f'{self.target_step + CHECKPOINT_EVERY_N}')
    return f'while the checkpoint after step {self.target_step} is written'


@dataclasses.dataclass
class TrialResult:
  """What one trial did and found."""
  index: int
  plan: KillPlan
  killed: bool = False
  kill_seconds: Optional[float] = None
  progress: str = ''
  timeline: str = ''
  latest_step_at_kill: Optional[int] = None
  listed_at_kill: List = dataclasses.field(default_factory=list)
  unlisted_at_kill: List = dataclasses.field(default_factory=list)
  resumed_from: Optional[int] = None
  final_step: Optional[int] = None
  survived: bool = False
  failure: str = ''
  seconds: float = 0.0

  def resumes_mid_run(self, num_steps):
    """Killed after a non-zero checkpoint and before the last one."""
    return self.killed and 0 < (self.latest_step_at_kill or 0) < num_steps

  def summary(self):
    """One line for stdout."""
    head = f'trial {self.index + 1} ({self.plan.mode}): '
    if self.killed:
      what = f'killed after {self.kill_seconds:.1f} s, {self.progress}'
    elif self.kill_seconds is not None:
      what = f'finished before the kill ({self.kill_seconds:.1f} s), {self.progress}'
    else:
      what = 'not started'
    leftovers = (f' (unlisted after the kill: {", ".join(self.unlisted_at_kill)})'
                 if self.unlisted_at_kill else '')
    facts = (f'{what}; latest checkpoint then at step {self.latest_step_at_kill}'
             f'{leftovers}')
    if self.survived:
      return (f'{head}survived: {facts}; the restart resumed from step '
              f'{self.resumed_from} and reached step {self.final_step} with finite '
              f'weights ({self.seconds:.0f} s)')
    return f'{head}FAILED: {self.failure} [{facts}]'


def write_training_config(work_dir, num_steps):
  """A tiny GC Faster R-CNN config with its data and fine-tune checkpoint."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from object_detection.builders import model_builder  # pylint: disable=g-import-not-at-top
  from object_detection.utils import config_util  # pylint: disable=g-import-not-at-top
  from gc_detection import atomic_files  # pylint: disable=g-import-not-at-top
  from gc_detection.data import shapes  # pylint: disable=g-import-not-at-top
  from gc_detection.data import tf_example  # pylint: disable=g-import-not-at-top

  size = 64
  config_dir = os.path.join(REPO_ROOT, 'pipeline_configs')
  record = os.path.join(work_dir, 'train.tfrecord')
  tf_example.write_tfrecord(record, shapes.generate(seed=3, count=4, height=size,
                                                    width=size, max_boxes=2))
  label_map = os.path.join(work_dir, 'label_map.pbtxt')
  atomic_files.write_text(label_map, tf_example.label_map_text(shapes.SHAPE_COLOURS))

  def load(name):
    configs = config_util.get_configs_from_pipeline_file(os.path.join(config_dir, name))
    resizer = configs['model'].faster_rcnn.image_resizer.keep_aspect_ratio_resizer
    resizer.min_dimension = resizer.max_dimension = size
    frcnn = configs['model'].faster_rcnn
    frcnn.first_stage_max_proposals, frcnn.second_stage_batch_size = 8, 4
    frcnn.initial_crop_size = 6
    frcnn.num_classes = len(shapes.SHAPE_COLOURS)
    return configs

  stock = model_builder.build(load('faster_rcnn_resnet50_v1_600x1024_coco.config')['model'],
                              is_training=False)
  image = tf.constant(np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)),
                      tf.float32)
  stock.predict(*stock.preprocess(image))
  fine_tune = tf.train.Checkpoint(model=stock).save(os.path.join(work_dir, 'zoo', 'ckpt'))

  configs = load('faster_rcnn_resnet50_v1_gc_600x1024_coco.config')
  configs = config_util.merge_external_params_with_configs(configs, kwargs_dict={
      'batch_size': 1, 'train_input_path': record, 'eval_input_path': record,
      'label_map_path': label_map})
  train_config = configs['train_config']
  train_config.ClearField('data_augmentation_options')
  train_config.fine_tune_checkpoint = fine_tune
  train_config.fine_tune_checkpoint_type = 'detection'
  train_config.num_steps = num_steps
  # Adam at a constant 1e-4: this tiny model diverges (NaN box-classifier
  # loss within 40 steps) under momentum SGD, which the divergence guard
  # would rightly stop; a crash trial needs a run that trains.
  train_config.optimizer.ClearField('momentum_optimizer')
  adam = train_config.optimizer.adam_optimizer
  adam.learning_rate.constant_learning_rate.learning_rate = 1e-4
  train_config.optimizer.use_moving_average = False
  from gc_detection.protos import global_context_pb2  # pylint: disable=g-import-not-at-top
  pipeline = config_util.create_pipeline_proto_from_configs(configs)
  # One phase: the Adam optimizer above for every step.
  pipeline.Extensions[global_context_pb2.global_context].ClearField('training_phases')
  config_util.save_pipeline_config(pipeline, work_dir)
  return os.path.join(work_dir, 'pipeline.config')


def _train_command(config, model_dir, trainer='train.sh'):
  flags_ = [f'--pipeline_config_path={config}', f'--model_dir={model_dir}',
            f'--checkpoint_every_n={CHECKPOINT_EVERY_N}']
  if trainer == 'train.sh':
    return ['bash', os.path.join(REPO_ROOT, 'scripts', 'train.sh')] + flags_
  if trainer == 'model_main_tf2':
    return [sys.executable, '-m', 'object_detection.model_main_tf2'] + flags_
  raise ValueError(f'trainer: expected one of {TRAINERS}, got {trainer!r}')


def _checkpoint_number(path):
  return int(re.search(r'ckpt-(\d+)$', path).group(1))


def listed_checkpoints(model_dir):
  """[(checkpoint number, path)] the state file lists, oldest first."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  state = tf.train.get_checkpoint_state(model_dir)
  if state is None:
    return []
  return [(_checkpoint_number(path), path) for path in state.all_model_checkpoint_paths]


def check_checkpoints(model_dir):
  """Checks every listed checkpoint.

  Returns:
    ([(number, step)] oldest first, [files under model_dir named like a
    checkpoint that the state file does not list]).
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  steps = []
  for number, path in listed_checkpoints(model_dir):
    try:
      reader = tf.train.load_checkpoint(path)
      # Reads every byte: a torn file fails here.
      values = {name: reader.get_tensor(name)
                for name in reader.get_variable_to_shape_map()}
    except (tf.errors.OpError, IndexError, ValueError) as error:
      raise TrialFailure(f'{path}: unreadable: {error}') from None
    for name, value in values.items():
      if np.issubdtype(np.asarray(value).dtype, np.floating) and not np.all(
          np.isfinite(value)):
        raise TrialFailure(f'{path}: {name} is not finite')
    steps.append((number, int(values[STEP_KEY])))
  if [step for _, step in steps] != sorted(step for _, step in steps):
    raise TrialFailure(f'checkpoint steps out of order: {steps}')
  for _, step in steps:
    if step % CHECKPOINT_EVERY_N:
      raise TrialFailure(f'a checkpoint at step {step}, not a multiple of '
                         f'{CHECKPOINT_EVERY_N}: {steps}')
  listed = {os.path.basename(path) for _, path in listed_checkpoints(model_dir)}
  unlisted = sorted(
      name for name in os.listdir(model_dir) if name.startswith('ckpt-') and
      re.sub(r'\.(index|data-\d+-of-\d+)$', '', name) not in listed)
  return steps, unlisted


def check_resumed(before, after, num_steps):
  """Checks that a restart went on from the latest checkpoint to num_steps.

  Args:
    before: [(checkpoint number, step)] listed after the kill, oldest first.
    after: the same after the restart finished.
    num_steps: the step training was asked to reach.

  Returns:
    The step the restart went on from, according to the checkpoints.

  Raises:
    TrialFailure: the restart did not reach num_steps, saved a step already
      checkpointed, or its first trained checkpoint is not one block after
      the latest one before it.
  """
  if not after or after[-1][1] != num_steps:
    raise TrialFailure(f'the restart ended at {after[-1:]} (checkpoint, step), '
                       f'not at step {num_steps}')
  if not before:
    return 0
  latest_number, latest_step = before[-1]
  new = [(number, step) for number, step in after if number > latest_number]
  # The stock trainer saves a checkpoint whenever it starts at step 0, so a
  # restart from the step-0 checkpoint saves step 0 once more.
  trained = [(number, step) for number, step in new if step or latest_step]
  if any(step < latest_step for _, step in trained):
    raise TrialFailure(f'the restart did not resume from step {latest_step}: '
                       f'it saved {new}')
  if any(step == latest_step for _, step in trained):
    raise TrialFailure(f'the restart saved step {latest_step} again (a duplicate of '
                       f'the latest checkpoint before it): it saved {new}')
  if trained and trained[0][1] != latest_step + CHECKPOINT_EVERY_N:
    raise TrialFailure(
        f'the restart resumed at step {trained[0][1] - CHECKPOINT_EVERY_N}, '
        f'not at the latest checkpoint\'s step {latest_step}')
  return latest_step


def events_files(model_dir):
  """The TensorBoard event files the trainer wrote under model_dir/train."""
  return set(glob.glob(os.path.join(model_dir, 'train', 'events.out.tfevents.*')))


def logged_loss_steps(paths):
  """Sorted steps at which the files in `paths` hold a Loss/total_loss summary."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  steps = set()
  for path in paths:
    try:
      for event in tf.compat.v1.train.summary_iterator(path):
        if any(value.tag == 'Loss/total_loss' for value in event.summary.value):
          steps.add(int(event.step))
    except tf.errors.DataLossError:
      pass  # the tail of a file its writer was killed while writing
  return sorted(steps)


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
    elif mode == 'mid_block':
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
      text += (f', ~{since / (self.arrivals[latest] - previous):.0%} into block '
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
  if plan.mode == 'mid_block':
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


def _run_until_kill(command, model_dir, plan, num_steps, log_file, result):
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


def run_trial(config, model_dir, plan, num_steps, log, result, trainer='train.sh'):
  """One kill + restart; fills in `result`. Raises TrialFailure."""
  command = _train_command(config, model_dir, trainer)
  with open(log, 'w') as log_file:
    _run_until_kill(command, model_dir, plan, num_steps, log_file, result)
  before, result.unlisted_at_kill = check_checkpoints(model_dir)
  result.listed_at_kill = before
  result.latest_step_at_kill = before[-1][1] if before else None
  first_run_events = events_files(model_dir)
  with open(log, 'a') as log_file:
    log_file.write('\n==== restart ====\n')
    log_file.flush()
    restarted = subprocess.run(command, cwd=REPO_ROOT, stdout=log_file,
                               stderr=subprocess.STDOUT, check=False,
                               timeout=TRIAL_TIMEOUT_SECONDS)
  if restarted.returncode != 0:
    with open(log) as log_file:
      tail = log_file.read().split('==== restart ====')[-1].strip().splitlines()[-5:]
    raise TrialFailure(f'the restart exited with {restarted.returncode}; see {log}: '
                       + ' | '.join(tail))
  after, unlisted = check_checkpoints(model_dir)
  result.final_step = after[-1][1] if after else None
  # TensorFlow saves into <prefix>_temp/ and merges into <prefix>.index/.data;
  # a kill in between leaves that directory, which nothing lists or reads.
  unlisted = [name for name in unlisted if not name.endswith('_temp')]
  if unlisted:
    raise TrialFailure(f'checkpoint files no state lists after the restart: {unlisted}')
  resumed = check_resumed(before, after, num_steps)
  # Independently of the checkpoints: the restart's own summaries (the stock
  # trainer writes the loss at the end of every block) start one block after
  # the step it restored.
  logged = logged_loss_steps(events_files(model_dir) - first_run_events)
  expected = list(range(resumed + CHECKPOINT_EVERY_N, num_steps + 1, CHECKPOINT_EVERY_N))
  if logged != expected:
    raise TrialFailure(f'the restart logged its loss at steps {logged}; resuming from '
                       f'step {resumed} it should have logged {expected}')
  result.resumed_from = resumed


def run_trials(trials, seed, num_steps, min_kill, max_kill, work_dir,
               modes=KILL_MODES, trainer='train.sh'):
  """Returns [TrialResult], one per trial, printing a line for each."""
  config = write_training_config(os.path.join(work_dir, 'config'), num_steps)
  results = []
  plans = kill_schedule(trials, seed, num_steps, min_kill, max_kill, modes)
  for index, plan in enumerate(plans):
    result = TrialResult(index, plan)
    started = time.perf_counter()
    try:
      run_trial(config, os.path.join(work_dir, f'trial_{index}'), plan, num_steps,
                os.path.join(work_dir, f'trial_{index}.log'), result, trainer)
      result.survived = True
    except (TrialFailure, subprocess.TimeoutExpired) as failure:
      result.failure = str(failure)
    result.seconds = time.perf_counter() - started
    results.append(result)
    print(result.summary(), flush=True)
  return results


def _cell(value):
  return '-' if value is None else str(value)


def report(results, settings, wall_seconds):
  """The Markdown section "crash_resume"."""
  import markdown_report  # pylint: disable=g-import-not-at-top
  rows = []
  for result in results:
    if result.killed:
      moment = f'{result.kill_seconds:.1f}'
    elif result.kill_seconds is not None:
      moment = f'none (finished at {result.kill_seconds:.1f})'
    else:
      moment = '-'
    rows.append([result.index + 1, result.plan.mode, result.plan.describe(),
                 result.timeline or '-', moment, result.progress.replace('|', '/') or '-',
                 _cell(result.latest_step_at_kill)
                 + (f' (unlisted: {", ".join(result.unlisted_at_kill)})'
                    if result.unlisted_at_kill else ''),
                 _cell(result.resumed_from), _cell(result.final_step),
                 'yes' if result.survived else
                 f'**no**: {result.failure.replace("|", "/")}',
                 f'{result.seconds / 60:.1f}'])
  survived = sum(result.survived for result in results)
  mid_run = sum(result.resumes_mid_run(settings['num_steps']) for result in results)
  lines = [
      '## Crash resume: SIGKILL during stock training, then a restart',
      markdown_report.markdown_table(['item', 'value'], markdown_report.machine_rows()),
      f'- Command: `benchmarks/crash_resume.py {settings["command"]}`; wall time '
      f'{wall_seconds / 60:.1f} min.',
      f'- Each trial: Faster R-CNN R-50 + GC at 64 px (generated data and fine-tune '
      f'checkpoint, Adam), trained to step {settings["num_steps"]} with '
      f'`{settings["trainer"]}` (the stock model_main_tf2, a checkpoint every '
      f'{CHECKPOINT_EVERY_N} steps) in a fresh model_dir, SIGKILL to its process '
      'group at the planned moment, then the same command again.',
      '- Kill moments (seeded from `--seed`): `before_first_checkpoint` at a random '
      'delay (or when the step-0 checkpoint is listed), `after_checkpoint` just '
      'after a non-zero checkpoint is listed, `mid_block` inside the block after it '
      '(a fraction of the previous block\'s duration), `during_save` while the next '
      'checkpoint\'s temporary files exist. "Checkpoints listed" and "progress" are '
      'what a poller of model_dir (every 5 ms) saw before and at the kill; times are '
      'seconds since the first run started.',
      '- Survived: every listed checkpoint reads back completely with finite weights '
      'after the kill and after the restart; the restart saved no step already saved '
      'and went on from the latest checkpoint (its first new checkpoint and its first '
      'loss summary one block after it); it reached the final step; no unlisted '
      'checkpoint file is left (a cut save\'s `ckpt-N_temp/` excepted).',
      markdown_report.markdown_table(
          ['trial', 'kill mode', 'planned', 'checkpoints listed (step @ time)',
           'killed at (s)', 'progress at the kill',
           'latest checkpoint step at the kill', 'resumed from step', 'final step',
           'survived', 'trial min'], rows),
      f'- **{survived} of {len(results)} trials survived**; {mid_run} of the '
      f'{sum(result.killed for result in results)} kills landed after a non-zero '
      f'checkpoint and before step {settings["num_steps"]} (so the restart resumed '
      'from a step > 0).',
  ]
  return '\n\n'.join(lines) + '\n'


def main(argv):
  del argv
  values = flags.FLAGS
  started = time.perf_counter()
  work_dir = values.work_dir or tempfile.mkdtemp(prefix='gc_crash_resume_')
  results = run_trials(values.trials, values.seed, values.num_steps,
                       values.min_kill_seconds, values.max_kill_seconds, work_dir,
                       modes=tuple(values.kill_modes), trainer=values.trainer)
  survived = sum(result.survived for result in results)
  command = ' '.join(arg for arg in sys.argv[1:] if not arg.startswith('--work_dir'))
  text = report(results, {'command': command, 'num_steps': values.num_steps,
                          'trainer': ('scripts/train.sh' if values.trainer == 'train.sh'
                                      else 'python -m object_detection.model_main_tf2')},
                time.perf_counter() - started)
  if values.markdown:
    import markdown_report  # pylint: disable=g-import-not-at-top
    markdown_report.replace_section(values.markdown, SECTION, text)
  print(f'\n{survived} of {values.trials} trials survived (SIGKILL at moments tied to '
        f'training progress, seed {values.seed}); logs and model dirs in {work_dir}')
  sys.exit(0 if survived == values.trials else 1)


if __name__ == '__main__':
  _define_flags()
  app.run(main)
