r"""Far-cue benchmark: stock Faster R-CNN R-50 vs the same + GC on the far-cue dataset.

The dataset (gc_detection.data.far_cue_scenes) has one object, a yellow disk,
in three classes told apart only by a cue beyond the receptive field of the
features the stock detector classifies from. Both models:

- are the committed pair pipeline_configs/far_cue/{faster_rcnn_resnet50_far_cue,
  faster_rcnn_resnet50_gc_far_cue}.config, read as committed (same data,
  steps, batch, optimizer, resize, anchors; they differ only in the extractor
  type and the GC block). Their data paths are relative (data/far_cue/...):
  every program that reads them runs in the work dir, where the benchmark
  writes its own copy of the dataset under that relative path;
- train from random weights with `scripts/train.sh`, i.e. the OD API's own
  model_main_tf2 (--num_train_steps = --num_steps), seeded alike with
  GC_DETECTION_SEED for each seed;
- are scored on the held-out split with pycocotools at every checkpoint
  (gc_detection.cli.evaluate_every_checkpoint). The last checkpoint is also
  scored by the stock evaluator (model_main_tf2 --checkpoint_dir) as a
  cross-check.

Runs alternate (stock, GC, stock, GC, ...) so that machine noise hits both.
Writes the Markdown table (AP, AP50, per-class AP; mean over seeds; the
target "GC beats stock by >= 5 AP") and a PNG of AP against step.

Usage (defaults: 2 seeds x 2 models x 600 steps, about 50 minutes on 2 cores):
  .venv/bin/python benchmarks/far_cue.py --markdown=BENCHMARKS.md \
      --plot=benchmarks/figures/far_cue_ap_vs_step.png
  --quick: 8 train / 4 val images, batch 1, 100 steps, one seed (checks the code path;
  says nothing about who wins).
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

# benchmarks/ is on sys.path when run as a script.
import harness
import markdown_report
import step_plots
from gc_detection.reports.markdown import markdown_table

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIR = os.path.join(REPO_ROOT, 'pipeline_configs', 'far_cue')
CONFIGS = {'stock': os.path.join(CONFIG_DIR, 'faster_rcnn_resnet50_far_cue.config'),
           'gc': os.path.join(CONFIG_DIR, 'faster_rcnn_resnet50_gc_far_cue.config')}
MODELS = ('stock', 'gc')
LABELS = {'stock': 'Faster R-CNN R-50 (stock)', 'gc': 'Faster R-CNN R-50 + GC'}
TARGET_AP_GAIN = 5.0
# --quick: one iteration of the stock trainer (it trains in iterations of 100
# steps whatever --num_train_steps says), at batch 1.
QUICK_STEPS = 100


def _define_flags():
  flags.DEFINE_list('seeds', ['0', '1'], 'GC_DETECTION_SEED of each pair of runs.')
  flags.DEFINE_integer('num_steps', None, 'Training steps per run (default: the '
                       'configs\' num_steps).')
  flags.DEFINE_integer('checkpoint_every_n', 100, 'Checkpoint (and score) interval.')
  flags.DEFINE_integer('num_train', 400, 'Training images.')
  flags.DEFINE_integer('num_val', 100, 'Held-out images.')
  flags.DEFINE_integer('data_seed', 0, 'Seed of the dataset (the same for every run).')
  flags.DEFINE_string('work_dir', None, 'Data and model dirs (default: a temp dir).')
  flags.DEFINE_string('markdown', None, 'Rewrite the "far_cue" section of this file.')
  flags.DEFINE_string('plot', None, 'Write the AP-against-step PNG here.')
  flags.DEFINE_bool('quick', False, 'A tiny run that checks the code path.')
  flags.DEFINE_bool('stock_evaluator', True, 'Cross-check the last checkpoint with '
                    'the stock evaluator.')
  flags.DEFINE_bool('report_only', False, 'Only rewrite the report (and plot) from '
                    'work_dir/results.json and run.json of an earlier run.')


def _log(message):
  print(f'[far_cue {time.strftime("%H:%M:%S")}] {message}', file=sys.stderr, flush=True)


def _venv_python():
  return sys.executable


def read_configs():
  """(the data dir the committed configs read, relative to the cwd; their settings).

  Raises:
    ValueError: the two configs read different data or train differently.
  """
  from object_detection.utils import config_util  # pylint: disable=g-import-not-at-top
  described = {}
  for model, path in CONFIGS.items():
    configs = config_util.get_configs_from_pipeline_file(path)
    train_config = configs['train_config']
    rate = train_config.optimizer.adam_optimizer.learning_rate.manual_step_learning_rate
    described[model] = {
        'data_dir': os.path.dirname(configs['train_input_config']
                                    .tf_record_input_reader.input_path[0]),
        'num_steps': train_config.num_steps, 'batch_size': train_config.batch_size,
        'learning_rate': (f'rate {rate.schedule[-1].learning_rate:g} after a '
                          f'{rate.schedule[0].step}-step warm-up from '
                          f'{rate.initial_learning_rate:g}') if rate.schedule else
                         'rate as configured'}
  if described['stock'] != described['gc']:
    raise ValueError(f'the far-cue configs differ in data or training: {described}')
  settings = described['gc']
  return settings.pop('data_dir'), settings


def train(config, model_dir, seed, num_steps, checkpoint_every_n, log_path, work_dir):
  """scripts/train.sh (the stock trainer) in work_dir, seeded; returns wall seconds."""
  started = time.perf_counter()
  with open(log_path, 'w') as log_file:  # the trainer's output as it comes
    completed = subprocess.run(
        ['bash', os.path.join(REPO_ROOT, 'scripts', 'train.sh'),
         f'--pipeline_config_path={config}', f'--model_dir={model_dir}',
         f'--num_train_steps={num_steps}',
         f'--checkpoint_every_n={checkpoint_every_n}'],
        cwd=work_dir, stdout=log_file, stderr=subprocess.STDOUT, check=False,
        env=dict(os.environ, GC_DETECTION_SEED=str(seed)))
  if completed.returncode != 0:
    raise RuntimeError(f'training {model_dir} failed (exit {completed.returncode}); '
                       f'see {log_path}')
  return time.perf_counter() - started


def evaluate(config, model_dir, data_paths, output, work_dir):
  """Scores every checkpoint with pycocotools (a fresh process); returns the list."""
  completed = subprocess.run(
      [_venv_python(), '-m', 'gc_detection.cli.evaluate_every_checkpoint',
       f'--pipeline_config_path={config}', f'--model_dir={model_dir}',
       f'--coco_annotations_file={data_paths["val_coco"]}',
       f'--image_dir={data_paths["val_images"]}', f'--output={output}'],
      cwd=work_dir, capture_output=True, text=True, check=False)
  if completed.returncode != 0:
    raise RuntimeError(f'evaluating {model_dir} failed: {completed.stderr[-2000:]}')
  with open(output) as metrics:
    return json.load(metrics)


def stock_evaluator_ap(config, model_dir, log_path, work_dir):
  """AP (%) of model_dir's latest checkpoint by model_main_tf2 --checkpoint_dir."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  eval_dir = os.path.join(model_dir, 'stock_eval')
  with open(log_path, 'w') as log_file:  # the evaluator's output as it comes
    subprocess.run(
        ['bash', os.path.join(REPO_ROOT, 'scripts', 'train.sh'),
         f'--pipeline_config_path={config}', f'--model_dir={eval_dir}',
         f'--checkpoint_dir={model_dir}', '--eval_timeout=0'],
        cwd=work_dir, stdout=log_file, stderr=subprocess.STDOUT, check=False)
  values = {}
  for path in tf.io.gfile.glob(os.path.join(eval_dir, 'eval', 'events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == 'DetectionBoxes_Precision/mAP':
          values[event.step] = 100 * float(tf.make_ndarray(value.tensor))
  return values[max(values)] if values else None


def attention_shares(config, model_dir, data_dir, work_dir):
  """benchmarks/far_cue_attention.py on a GC run (a fresh process); returns its dict."""
  completed = subprocess.run(
      [_venv_python(), os.path.join(REPO_ROOT, 'benchmarks', 'far_cue_attention.py'),
       f'--pipeline_config_path={config}', f'--checkpoint={model_dir}',
       f'--data_dir={data_dir}'], cwd=work_dir, capture_output=True, text=True,
      check=False)
  if completed.returncode != 0:
    raise RuntimeError(f'attention shares of {model_dir} failed: {completed.stderr[-2000:]}')
  return json.loads(completed.stdout.strip().splitlines()[-1])


def plot(results, path, title):
  """AP against step: one thin line per run, the mean over seeds bold."""
  step_plots.plot_runs(results, path, title, LABELS, 'metrics', 'AP',
                       'COCO AP (%) on held-out images')


def _percent(value):
  return '-' if value is None else f'{value:.0f}%'


def _mean_or_none(values):
  values = [value for value in values if value is not None]
  return statistics.mean(values) if values else None


def report(results, settings, wall_seconds, plot_path):
  """The Markdown section."""
  from gc_detection.data import far_cue_scenes  # pylint: disable=g-import-not-at-top

  classes = list(far_cue_scenes.CLASSES)
  rows = []
  for run in results:
    final = run['metrics'][-1]
    rows.append([LABELS[run['model']], run['seed'], final['step'], f'{final["AP"]:.1f}',
                 f'{final["AP50"]:.1f}'] +
                [f'{final["per_class"][name]:.1f}' for name in classes] +
                [f'{final["AP_class_agnostic"]:.1f}', _percent(final['class_accuracy'])] +
                [f'{run["stock_evaluator_ap"]:.1f}' if run.get('stock_evaluator_ap')
                 is not None else '-', f'{run["train_seconds"] / 60:.1f}'])
  means = {}
  for model in MODELS:
    finals = [run['metrics'][-1] for run in results if run['model'] == model]
    means[model] = statistics.mean(final['AP'] for final in finals)
    rows.append([f'**{LABELS[model]}, mean**', '', '', f'**{means[model]:.1f}**',
                 f'{statistics.mean(f["AP50"] for f in finals):.1f}'] +
                [f'{statistics.mean(f["per_class"][name] for f in finals):.1f}'
                 for name in classes] +
                [f'{statistics.mean(f["AP_class_agnostic"] for f in finals):.1f}',
                 _percent(_mean_or_none([f['class_accuracy'] for f in finals])), '', ''])
  gain = means['gc'] - means['stock']
  verdict = 'MET' if gain >= TARGET_AP_GAIN else 'MISSED'
  lines = [
      '## Far-cue benchmark: does global context change what the detector sees?',
      markdown_report.machine_table(),
      f'- Command: `benchmarks/far_cue.py {settings["command"]}`; wall time '
      f'{wall_seconds / 60:.1f} min.',
      f'- Data: gc_detection.data.far_cue_scenes, {settings["num_train"]} training and '
      f'{settings["num_val"]} held-out {settings["size"]}x{settings["size"]} images '
      f'(data seed {settings["data_seed"]}); classes {", ".join(classes)}: the same '
      'yellow disk, told apart only by a band or a companion object along an image '
      f'edge at least {settings["min_cue_distance"]} px beyond the box (grown by one '
      f'C4 cell): outside the {far_cue_scenes.C4_RECEPTIVE_FIELD} px receptive field '
      'of every C4 feature the stock box classifier reads.',
      f'- Training: the committed pipeline_configs/far_cue pair as they are, random '
      f'weights, {settings["num_steps"]} steps at batch {settings["batch_size"]}, Adam '
      f'({settings["learning_rate"]}), `scripts/train.sh` (the stock '
      'model_main_tf2), `GC_DETECTION_SEED` = seed.',
      '- Scores: pycocotools COCOeval on the held-out images (AP = IoU .50:.95); '
      '"stock eval AP" = the OD API\'s own evaluator on the same last checkpoint.',
      markdown_table(
          ['model', 'seed', 'step', 'AP', 'AP50'] + [f'AP {name}' for name in classes] +
          ['class-agnostic AP', 'class accuracy', 'stock eval AP', 'train min'], rows),
      '- Class-agnostic AP: COCOeval with classes ignored (how well disks are found). '
      'Class accuracy: of the objects found (a detection with IoU >= 0.5), the share '
      'whose best detection has the right class; a detector blind to the cue scores '
      f'{100 / len(classes):.0f}%.',
      f'- GC - stock, mean AP over seeds: **{gain:+.1f}** (target >= '
      f'{TARGET_AP_GAIN:g}: {verdict}).',
  ]
  shares = [run['attention'] for run in results if run.get('attention')]
  if shares:
    def mean(name):
      return statistics.mean(share[name] for share in shares)
    lines.append(
        f'- Where the GC model looks (benchmarks/far_cue_attention.py; the C4 cell under '
        f'each object\'s centre as the query, mean over heads, {shares[0]["objects"]} '
        f'objects of {shares[0]["images"]} held-out images, mean of {len(shares)} '
        f'run(s)): {mean("on_cue_strip"):.0%} of the weight on the cells of the cue\'s '
        f'strip, which are {mean("cue_strip_cells"):.1%} of the cells (uniform '
        f'attention would give that); {mean("reaching_cue"):.0%} on cells whose own '
        f'receptive field reaches the cue ({mean("reaching_cells"):.0%} of the cells); '
        f'{mean("own_cell"):.1%} on the query\'s own cell.')
  if plot_path:
    lines.append(f'![AP against step]({os.path.relpath(plot_path, REPO_ROOT)})')
  return '\n\n'.join(lines) + '\n', gain


def quick_configs(work_dir):
  """The committed configs at batch 1, written into work_dir (--quick only).

  Returns:
    {model: path}. The data paths stay relative (data/far_cue), as committed.
  """
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  from gc_detection import atomic_files  # pylint: disable=g-import-not-at-top
  from gc_detection.od_api import pipeline_files  # pylint: disable=g-import-not-at-top
  paths = {}
  for model, path in CONFIGS.items():
    pipeline = pipeline_files.read_pipeline(path)
    pipeline.train_config.batch_size = 1
    paths[model] = os.path.join(work_dir, f'quick_{os.path.basename(path)}')
    atomic_files.write_text(paths[model], text_format.MessageToString(pipeline))
  return paths


def main(argv):
  del argv
  values = flags.FLAGS
  from gc_detection import atomic_files  # pylint: disable=g-import-not-at-top
  from gc_detection.data import far_cue_dataset  # pylint: disable=g-import-not-at-top
  from gc_detection.data import far_cue_scenes  # pylint: disable=g-import-not-at-top

  if values.report_only:
    results, run_settings, wall_seconds = harness.earlier_run(values.work_dir)
    data_dir, _ = read_configs()
    for run in results:  # runs made before the attention shares were measured
      if run['model'] == 'gc' and 'attention' not in run:
        run['attention'] = attention_shares(
            CONFIGS['gc'], run['model_dir'], os.path.join(values.work_dir, data_dir),
            values.work_dir)
    atomic_files.write_text(os.path.join(values.work_dir, 'results.json'),
                            json.dumps(results, indent=2))
    _write_report(results, run_settings, wall_seconds, values)
    return
  data_dir, config_settings = read_configs()
  if os.path.isabs(data_dir):
    sys.exit(f'the far-cue configs read an absolute data dir ({data_dir}); the '
             'benchmark needs the committed relative one (data/far_cue)')
  steps = values.num_steps or config_settings['num_steps']
  if values.quick:
    num_train, num_val, steps, seeds = 8, 4, QUICK_STEPS, ['0']
    config_settings = dict(config_settings, batch_size=1)
  else:
    num_train, num_val, seeds = values.num_train, values.num_val, values.seeds
  batch = config_settings['batch_size']
  started = time.perf_counter()
  work_dir = os.path.abspath(values.work_dir or tempfile.mkdtemp(prefix='gc_far_cue_'))
  os.makedirs(work_dir, exist_ok=True)
  configs = quick_configs(work_dir) if values.quick else CONFIGS
  spec = far_cue_scenes.SceneSpec()
  data_path = os.path.join(work_dir, data_dir)
  _log(f'writing the dataset into {data_path}')
  data_paths = far_cue_dataset.write_dataset(data_path, num_train, num_val,
                                             values.data_seed, spec, show_progress=False)
  results = []
  for seed in seeds:
    for model in MODELS:
      model_dir = os.path.join(work_dir, 'runs', model, f'seed_{seed}')
      os.makedirs(os.path.dirname(model_dir), exist_ok=True)  # for the logs beside it
      _log(f'training {model}, seed {seed}: {steps} steps at batch {batch}')
      seconds = train(configs[model], model_dir, seed, steps, values.checkpoint_every_n,
                      model_dir + '.train.log', work_dir)
      metrics = evaluate(configs[model], model_dir, data_paths,
                         os.path.join(model_dir, 'coco_metrics.json'), work_dir)
      run = {'model': model, 'seed': seed, 'train_seconds': seconds, 'metrics': metrics,
             'model_dir': model_dir}
      if model == 'gc':
        run['attention'] = attention_shares(configs[model], model_dir, data_path,
                                            work_dir)
      if values.stock_evaluator:
        run['stock_evaluator_ap'] = stock_evaluator_ap(
            configs[model], model_dir, model_dir + '.eval.log', work_dir)
      _log(f'{model}, seed {seed}: AP by step ' + ', '.join(
          f'{m["step"]}: {m["AP"]:.1f}' for m in metrics) +
           f'; stock evaluator {run.get("stock_evaluator_ap")}')
      results.append(run)
  atomic_files.write_text(os.path.join(work_dir, 'results.json'),
                          json.dumps(results, indent=2))
  command = ' '.join(arg for arg in sys.argv[1:] if not arg.startswith('--work_dir'))
  settings = dict(config_settings, command=command, num_train=num_train, num_val=num_val,
                  size=spec.size, data_seed=values.data_seed,
                  min_cue_distance=spec.min_cue_distance, num_steps=steps,
                  seeds=seeds, work_dir=work_dir)
  wall_seconds = time.perf_counter() - started
  atomic_files.write_text(os.path.join(work_dir, 'run.json'), json.dumps(
      {'settings': settings, 'wall_seconds': wall_seconds}, indent=2))
  _write_report(results, settings, wall_seconds, values)


def _write_report(results, settings, wall_seconds, values):
  """Plot, Markdown section (if asked) and the table on stdout."""
  plot_path = values.plot or os.path.join(settings['work_dir'], 'far_cue_ap_vs_step.png')
  plot(results, plot_path, f'Far-cue dataset: {len(settings["seeds"])} seed(s), '
       f'{settings["num_steps"]} steps, batch {settings["batch_size"]}')
  text, gain = report(results, settings, wall_seconds, plot_path if values.plot else None)
  if values.markdown:
    markdown_report.replace_section(values.markdown, 'far_cue', text)
  print(text)
  _log(f'GC - stock mean AP {gain:+.1f}; results in {settings["work_dir"]}/results.json, '
       f'plot {plot_path}')


if __name__ == '__main__':
  _define_flags()
  app.run(main)
