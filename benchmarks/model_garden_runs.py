"""Paired training runs of registered Model Garden experiments (stock vs GC).

Shared by the far-cue segmentation and panoptic benchmarks: each trains the
registered stock and GC experiment of its task with `python -m
official.vision.train --mode=train_and_eval` (Model Garden's own trainer,
unmodified), alternating the two models seed by seed so that machine noise
hits both, and reads the trainer's own evaluations back from its event files.
The flags below are both benchmarks' own.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

from absl import flags

MODELS = ('stock', 'gc')
QUICK = {'num_train': 8, 'num_val': 4, 'steps': 2, 'interval': 2}

flags.DEFINE_list('seeds', ['0', '1'], 'task.seed of each pair of runs.')
flags.DEFINE_integer('num_steps', None, 'Training steps per run (default: the '
                     'experiments\' trainer.train_steps).')
flags.DEFINE_integer('num_train', 400, 'Training strips.')
flags.DEFINE_integer('num_val', 100, 'Held-out strips.')
flags.DEFINE_integer('data_seed', 0, 'Seed of the dataset (the same for every run).')
flags.DEFINE_string('work_dir', None, 'Data and model dirs (default: a temp dir). Run '
                    'again with the same work_dir, an interrupted benchmark keeps its '
                    'finished runs and resumes the rest from their last checkpoints.')
flags.DEFINE_string('markdown', None, 'Rewrite the benchmark\'s section of this file.')
flags.DEFINE_string('plot', None, 'Write the metric-against-step PNG here.')
flags.DEFINE_string('pictures', None, 'Write the PNG of predictions beside the truth here.')
flags.DEFINE_bool('quick', False, 'A tiny run that checks the code path (8 train / 4 val '
                  'strips, 2 steps, one seed); says nothing about who wins.')
flags.DEFINE_bool('report_only', False, 'Only redraw the plot and pictures and rewrite '
                  'the report from work_dir/results.json and run.json of an earlier run.')
FLAGS = flags.FLAGS


def experiment_settings(experiments):
  """The registered pair's shared settings; raises if they train differently.

  Args:
    experiments: {'stock': name, 'gc': name}.
  """
  from official.core import exp_factory  # pylint: disable=g-import-not-at-top
  from gc_detection.model_garden import registry  # pylint: disable=g-import-not-at-top,unused-import
  described = {}
  for model, name in experiments.items():
    config = exp_factory.get_exp_config(name)
    described[model] = {
        'train_path': config.task.train_data.input_path,
        'val_path': config.task.validation_data.input_path,
        'num_steps': config.trainer.train_steps,
        'batch_size': config.task.train_data.global_batch_size,
        'input_size': list(config.task.model.input_size),
        'optimizer': json.dumps(config.trainer.optimizer_config.as_dict(), sort_keys=True),
        'validation_interval': config.trainer.validation_interval}
  if described['stock'] != described['gc']:
    raise ValueError(f'the far-cue experiments differ in data or training: {described}')
  return described['gc']


def relative_data_dir(settings):
  """The experiments' data dir, which must be relative (the benchmark writes it)."""
  data_dir = os.path.dirname(settings['train_path'])
  if os.path.isabs(data_dir):
    sys.exit(f'the far-cue experiments read an absolute data dir ({data_dir}); the '
             'benchmark needs the registered relative one')
  return data_dir


def overrides(seed, steps, num_val, batch_size, interval=None):
  """--params_override of one run: the seeds, and the step counts if changed."""
  values = [f'task.seed={seed}', f'task.train_data.seed={seed}',
            f'trainer.train_steps={steps}',
            f'trainer.validation_steps={-(-num_val // batch_size)}']
  if interval:
    values += [f'trainer.{name}={interval}' for name in (
        'validation_interval', 'steps_per_loop', 'summary_interval',
        'checkpoint_interval')]
  return ','.join(values)


def train(experiment, model_dir, params_override, log_path, work_dir):
  """official.vision.train (train_and_eval) in work_dir; returns wall seconds."""
  started = time.perf_counter()
  with open(log_path, 'w') as log_file:
    completed = subprocess.run(
        [sys.executable, '-m', 'official.vision.train', f'--experiment={experiment}',
         '--mode=train_and_eval', f'--model_dir={model_dir}',
         f'--params_override={params_override}'],
        cwd=work_dir, stdout=log_file, stderr=subprocess.STDOUT, check=False)
  if completed.returncode != 0:
    raise RuntimeError(f'training {model_dir} failed (exit {completed.returncode}); '
                       f'see {log_path}')
  return time.perf_counter() - started


def validation_scores(model_dir, tags, required):
  """[{'step', tag: percent, ...}] of the trainer's evaluations, in step order.

  Only evaluations that logged the tag `required` are kept.
  """
  from gc_detection.reports import summary_events  # pylint: disable=g-import-not-at-top
  by_tag = {}
  for tags_steps in summary_events.read_scalars(
      summary_events.event_files(os.path.join(model_dir, 'validation')), tags).values():
    by_tag.update(tags_steps)
  by_step = {}
  for tag, steps in by_tag.items():
    for step, value in steps.items():
      by_step.setdefault(step, {})[tag] = 100.0 * value
  return [{'step': step, **by_step[step]} for step in sorted(by_step)
          if required in by_step[step]]


def _finished_run_path(model_dir):
  return model_dir + '.finished.json'


def _attempts_path(model_dir):
  return model_dir + '.attempts.json'


def _latest_checkpoint_time(model_dir):
  """Modification time of model_dir's latest checkpoint index, or None."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  prefix = tf.train.latest_checkpoint(model_dir) if os.path.isdir(model_dir) else None
  return os.path.getmtime(prefix + '.index') if prefix else None


def train_resumably(experiment, model_dir, params_override, work_dir, log):
  """Trains model_dir to the end, resuming an interrupted earlier attempt.

  Model Garden's trainer restores model_dir's latest checkpoint, so a run
  killed (say, by the end of a session) continues from its last checkpoint.
  Every attempt is recorded in model_dir.attempts.json before it starts; an
  attempt that never finished counts up to its last checkpoint (the steps
  after it are trained again).

  Returns:
    (train seconds over all attempts, of them in earlier attempts, attempts).
  """
  from gc_detection import atomic_files  # pylint: disable=g-import-not-at-top
  attempts_path = _attempts_path(model_dir)
  attempts = []
  if os.path.isfile(attempts_path):
    with open(attempts_path) as attempts_file:
      attempts = json.load(attempts_file)
  for attempt in attempts:
    if 'seconds' not in attempt:
      checkpointed = _latest_checkpoint_time(model_dir)
      attempt['seconds'] = max(0.0, (checkpointed or attempt['started'])
                               - attempt['started'])
      attempt['interrupted'] = True
  if attempts:
    log(f'{model_dir}: resuming after {len(attempts)} interrupted attempt(s)')
  earlier_seconds = sum(attempt['seconds'] for attempt in attempts)
  attempts.append({'started': time.time()})
  atomic_files.write_text(attempts_path, json.dumps(attempts, indent=2))
  attempts[-1]['seconds'] = train(experiment, model_dir, params_override,
                                  f'{model_dir}.train{len(attempts)}.log', work_dir)
  atomic_files.write_text(attempts_path, json.dumps(attempts, indent=2))
  return earlier_seconds + attempts[-1]['seconds'], earlier_seconds, len(attempts)


def run_pairs(experiments, seeds, steps, num_val, batch_size, interval, work_dir,
              curve_of, log):
  """Trains stock then GC for each seed; returns the results list.

  Rerun with the same work_dir (and the same steps), it keeps the runs that
  finished and resumes the one that was interrupted.

  Args:
    curve_of: model_dir -> the run's evaluations (a list of dicts with 'step').
    log: prints one progress line.
  Returns:
    [{'model', 'seed', 'train_seconds', 'attempts', 'earlier_seconds', 'curve',
    'model_dir'}] in run order; earlier_seconds is the training time spent by
    earlier invocations of the benchmark.
  """
  from gc_detection import atomic_files  # pylint: disable=g-import-not-at-top
  results = []
  for seed in seeds:
    for model in MODELS:
      model_dir = os.path.join(work_dir, 'runs', model, f'seed_{seed}')
      os.makedirs(os.path.dirname(model_dir), exist_ok=True)
      params_override = overrides(seed, steps, num_val, batch_size, interval)
      finished_path = _finished_run_path(model_dir)
      finished = None
      if os.path.isfile(finished_path):
        with open(finished_path) as finished_file:
          finished = json.load(finished_file)
      if finished and finished['params_override'] == params_override:
        log(f'{model}, seed {seed}: trained by an earlier invocation, kept')
        earlier_seconds = finished['train_seconds']
      else:
        if finished:
          sys.exit(f'{model_dir} was trained with {finished["params_override"]}, not '
                   f'{params_override}; use another --work_dir')
        log(f'training {model}, seed {seed}: {steps} steps at batch {batch_size}')
        seconds, earlier_seconds, attempts = train_resumably(experiments[model], model_dir,
                                            params_override, work_dir, log)
        finished = {'train_seconds': seconds, 'attempts': attempts,
                    'params_override': params_override}
        atomic_files.write_text(finished_path, json.dumps(finished, indent=2))
      results.append({'model': model, 'seed': seed,
                      'train_seconds': finished['train_seconds'],
                      'attempts': finished['attempts'],
                      'earlier_seconds': earlier_seconds, 'curve': curve_of(model_dir),
                      'model_dir': model_dir})
  return results


def save_run(work_dir, results, run_settings, started):
  """Writes work_dir/results.json and run.json (for --report_only); returns wall seconds.

  The wall time adds the training time of earlier (interrupted) invocations.
  """
  from gc_detection import atomic_files  # pylint: disable=g-import-not-at-top
  atomic_files.write_text(os.path.join(work_dir, 'results.json'),
                          json.dumps(results, indent=2))
  wall_seconds = time.perf_counter() - started + sum(
      run['earlier_seconds'] for run in results)
  atomic_files.write_text(os.path.join(work_dir, 'run.json'), json.dumps(
      {'settings': run_settings, 'wall_seconds': wall_seconds}, indent=2))
  return wall_seconds


def command_line():
  """The benchmark's flags as run, without the machine-specific --work_dir."""
  return ' '.join(arg for arg in sys.argv[1:] if not arg.startswith('--work_dir'))


def _check_earlier_dataset(data_dir, num_train, num_val):
  """Exits if work_dir holds runs trained on another dataset than the flags'."""
  summary_path = os.path.join(data_dir, 'dataset.json')
  if not os.path.isfile(summary_path):
    return
  with open(summary_path) as summary_file:
    summary = json.load(summary_file)
  wanted = {'seed': FLAGS.data_seed, 'num_train': num_train, 'num_val': num_val}
  found = {name: summary.get(name) for name in wanted}
  if found != wanted:
    sys.exit(f'{summary_path}: the work_dir holds a dataset with {found}, not {wanted}; '
             'use another --work_dir')


def run(experiments, spec, write_dataset, curve_of, name, log):
  """Writes the dataset, trains every pair as the flags say, saves the run.

  Args:
    experiments: {'stock': name, 'gc': name}.
    spec: the strips' spec (a dataclass), recorded in run.json.
    write_dataset: (directory, num_train, num_val, seed, spec, show_progress).
    curve_of: model_dir -> the run's evaluations.
    name: the benchmark's name (its temp dir's prefix).
    log: prints one progress line.
  Returns:
    (results, run settings, wall seconds), as harness.earlier_run reads them back.
  """
  settings = experiment_settings(experiments)
  data_dir = relative_data_dir(settings)
  steps = FLAGS.num_steps or settings['num_steps']
  interval = None
  if FLAGS.quick:
    num_train, num_val, steps, seeds = (QUICK['num_train'], QUICK['num_val'],
                                        QUICK['steps'], ['0'])
    interval = QUICK['interval']
  else:
    num_train, num_val, seeds = FLAGS.num_train, FLAGS.num_val, FLAGS.seeds
  started = time.perf_counter()
  work_dir = os.path.abspath(FLAGS.work_dir or tempfile.mkdtemp(prefix=f'gc_{name}_'))
  _check_earlier_dataset(os.path.join(work_dir, data_dir), num_train, num_val)
  log(f'writing the dataset into {os.path.join(work_dir, data_dir)}')
  write_dataset(os.path.join(work_dir, data_dir), num_train, num_val, FLAGS.data_seed,
                spec, show_progress=False)
  results = run_pairs(experiments, seeds, steps, num_val, settings['batch_size'],
                      interval, work_dir, curve_of, log)
  run_settings = dict(settings, command=command_line(), num_train=num_train,
                      num_val=num_val, data_seed=FLAGS.data_seed, spec=spec.__dict__,
                      num_steps=steps, seeds=seeds, work_dir=work_dir,
                      load_average=os.getloadavg()[2])
  return results, run_settings, save_run(work_dir, results, run_settings, started)


def resumed_runs_note(results, labels):
  """A report line naming the runs trained over more than one attempt, or None."""
  resumed = [f'{labels[run["model"]]}, seed {run["seed"]} ({run["attempts"]} attempts)'
             for run in results if run.get('attempts', 1) > 1]
  if not resumed:
    return None
  return ('- Resumed runs (the benchmark was interrupted and run again; the trainer '
          'restored the last checkpoint, and train min counts each interrupted attempt '
          'up to that checkpoint): ' + '; '.join(resumed) + '.')


def save_strip_rows(strip_rows, path, gap=4):
  """Writes a PNG (atomically): each strip's rows stacked, white gaps between.

  Args:
    strip_rows: per strip, a list of uint8 (H, W, 3) rows of the same width.
  """
  import io  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from gc_detection import atomic_files  # pylint: disable=g-import-not-at-top
  width = strip_rows[0][0].shape[1]
  blocks = []
  for rows in strip_rows:
    for row in rows:
      blocks += [row, np.full((gap // 2, width, 3), 255, np.uint8)]
    blocks.append(np.full((3 * gap, width, 3), 255, np.uint8))
  buffer = io.BytesIO()
  Image.fromarray(np.concatenate(blocks[:-1])).save(buffer, format='PNG')
  atomic_files.write_bytes(path, buffer.getvalue())


def restored_model(experiment, model_dir):
  """The registered experiment's model with model_dir's latest checkpoint."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from official.core import exp_factory  # pylint: disable=g-import-not-at-top
  from official.core import task_factory  # pylint: disable=g-import-not-at-top
  from gc_detection.model_garden import registry  # pylint: disable=g-import-not-at-top,unused-import

  model = task_factory.get_task(exp_factory.get_exp_config(experiment).task).build_model()
  tf.train.Checkpoint(model=model).read(tf.train.latest_checkpoint(model_dir)).expect_partial()
  return model


def normalised(images):
  """float32 (N, H, W, 3) model inputs of uint8 images, as official.vision normalises."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from official.vision.ops import preprocess_ops  # pylint: disable=g-import-not-at-top
  return tf.stack([preprocess_ops.normalize_image(tf.constant(image)) for image in images])
