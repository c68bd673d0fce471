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
   - `mid_iteration`: inside the iteration of the stock train_loop after
     that checkpoint (num_steps_per_iteration = 100 steps, one checkpoint
     each), at a random 10-60% of the duration of the iteration before it
     (which, for the first iteration, includes tracing the training loop:
     the next iteration is faster);
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
   one iteration after it), that the final step is num_steps, that the final
   weights are finite and that no unlisted checkpoint file is left
   (TensorFlow's own <prefix>_temp directory of a cut save excepted).

The kill moments and the model_dir poller are in
benchmarks/crash_resume_kills.py, the checks in benchmarks/crash_resume_checks.py.

A trial survives when every check passes. Prints one line per trial and the
survived / tried count; exits 1 if any trial failed. With --markdown, writes
the "crash_resume" section of that file (command, machine, one row per trial).

Usage (3-5 minutes per trial on 2 busy cores):
  .venv/bin/python benchmarks/crash_resume.py [--trials=5] [--seed=0] \
      [--markdown=BENCHMARKS.md] [--work_dir=DIR]
"""
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from typing import List, Optional

from absl import app
from absl import flags

# benchmarks/ is on sys.path when run as a script.
import crash_resume_kills
from crash_resume_checks import (CHECKPOINT_EVERY_N, TrialFailure, check_checkpoints,
                                 check_resumed, events_files, logged_loss_steps)
from crash_resume_kills import KILL_MODES, TRIAL_TIMEOUT_SECONDS, KillPlan
import markdown_report
from gc_detection.reports.markdown import markdown_table

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAINERS = ('train.sh', 'model_main_tf2')
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
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  from gc_detection.protos import global_context_pb2  # pylint: disable=g-import-not-at-top
  pipeline = config_util.create_pipeline_proto_from_configs(configs)
  # One phase: the Adam optimizer above for every step.
  pipeline.Extensions[global_context_pb2.global_context].ClearField('training_phases')
  path = os.path.join(work_dir, 'pipeline.config')
  atomic_files.write_text(path, text_format.MessageToString(pipeline))
  return path


def _train_command(config, model_dir, trainer='train.sh'):
  flags_ = [f'--pipeline_config_path={config}', f'--model_dir={model_dir}',
            f'--checkpoint_every_n={CHECKPOINT_EVERY_N}']
  if trainer == 'train.sh':
    return ['bash', os.path.join(REPO_ROOT, 'scripts', 'train.sh')] + flags_
  if trainer == 'model_main_tf2':
    return [sys.executable, '-m', 'object_detection.model_main_tf2'] + flags_
  raise ValueError(f'trainer: expected one of {TRAINERS}, got {trainer!r}')


def run_trial(config, model_dir, plan, num_steps, log, result, trainer='train.sh'):
  """One kill + restart; fills in `result`. Raises TrialFailure."""
  command = _train_command(config, model_dir, trainer)
  with open(log, 'w') as log_file:
    crash_resume_kills.run_until_kill(command, model_dir, plan, num_steps, log_file, result)
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
  # trainer writes the loss at the end of every iteration) start one
  # iteration after the step it restored.
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
  plans = crash_resume_kills.kill_schedule(trials, seed, num_steps, min_kill, max_kill, modes)
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
      markdown_report.machine_table(),
      f'- Command: `benchmarks/crash_resume.py {settings["command"]}`; wall time '
      f'{wall_seconds / 60:.1f} min.',
      f'- Each trial: Faster R-CNN R-50 + GC at 64 px (generated data and fine-tune '
      f'checkpoint, Adam), trained to step {settings["num_steps"]} with '
      f'`{settings["trainer"]}` (the stock model_main_tf2, a checkpoint every '
      f'{CHECKPOINT_EVERY_N} steps) in a fresh model_dir, SIGKILL to its process '
      'group at the planned moment, then the same command again.',
      '- Kill moments (seeded from `--seed`): `before_first_checkpoint` at a random '
      'delay (or when the step-0 checkpoint is listed), `after_checkpoint` just '
      'after a non-zero checkpoint is listed, `mid_iteration` inside the iteration '
      'of the stock train_loop after it (a fraction of the previous iteration\'s '
      f'duration; an iteration is {CHECKPOINT_EVERY_N} steps, its '
      'num_steps_per_iteration), `during_save` while the next '
      'checkpoint\'s temporary files exist. "Checkpoints listed" and "progress" are '
      'what a poller of model_dir (every 5 ms) saw before and at the kill; times are '
      'seconds since the first run started.',
      '- Survived: every listed checkpoint reads back completely with finite weights '
      'after the kill and after the restart; the restart saved no step already saved '
      'and went on from the latest checkpoint (its first new checkpoint and its first '
      'loss summary one iteration after it); it reached the final step; no unlisted '
      'checkpoint file is left (a cut save\'s `ckpt-N_temp/` excepted).',
      markdown_table(
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
    markdown_report.replace_section(values.markdown, SECTION, text)
  print(f'\n{survived} of {values.trials} trials survived (SIGKILL at moments tied to '
        f'training progress, seed {values.seed}); logs and model dirs in {work_dir}')
  sys.exit(0 if survived == values.trials else 1)


if __name__ == '__main__':
  _define_flags()
  app.run(main)
