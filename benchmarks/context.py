r"""Context benchmark: stock Faster R-CNN R-50 vs the same + GC on the context dataset.

The dataset (gc_detection.data.context_scenes) has one object, a yellow disk,
in three classes told apart only by a cue beyond the receptive field of the
features the stock detector classifies from. Both models:

- come from one pair of configs (gc_detection.tools.context_configs): same
  data, steps, batch, optimizer, resize, anchors; they differ only in the
  extractor type and the GC block;
- train from random weights with `scripts/train.sh`, i.e. the OD API's own
  model_main_tf2, seeded alike with GC_DETECTION_SEED for each seed;
- are scored on the held-out split with pycocotools at every checkpoint
  (gc_detection.tools.evaluate_checkpoints). The last checkpoint is also
  scored by the stock evaluator (model_main_tf2 --checkpoint_dir) as a
  cross-check.

Runs alternate (stock, GC, stock, GC, ...) so that machine noise hits both.
Writes the Markdown table (AP, AP50, per-class AP; mean over seeds; the
target "GC beats stock by >= 5 AP") and a PNG of AP against step.

Usage (defaults: 2 seeds x 2 models x 600 steps, about 50 minutes on 2 cores):
  .venv/bin/python benchmarks/context.py --markdown=BENCHMARKS.md \
      --plot=benchmarks/figures/context_ap_vs_step.png
  --quick: 8 train / 4 val images, batch 1, 100 steps, one seed (checks the
  code path; says nothing about who wins).
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

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ('stock', 'gc')
LABELS = {'stock': 'Faster R-CNN R-50 (stock)', 'gc': 'Faster R-CNN R-50 + GC'}
TARGET_AP_GAIN = 5.0


def _define_flags():
  flags.DEFINE_list('seeds', ['0', '1'], 'GC_DETECTION_SEED of each pair of runs.')
  flags.DEFINE_integer('num_steps', 600, 'Training steps per run.')
  flags.DEFINE_integer('checkpoint_every_n', 100, 'Checkpoint (and score) interval.')
  flags.DEFINE_integer('batch_size', 4, 'Training batch.')
  flags.DEFINE_float('learning_rate', None, 'Adam rate (default: the configs\').')
  flags.DEFINE_integer('num_train', 400, 'Training images.')
  flags.DEFINE_integer('num_val', 100, 'Held-out images.')
  flags.DEFINE_integer('data_seed', 0, 'Seed of the dataset (the same for every run).')
  flags.DEFINE_string('work_dir', None, 'Data and model dirs (default: a temp dir).')
  flags.DEFINE_string('markdown', None, 'Rewrite the "context" section of this file.')
  flags.DEFINE_string('plot', None, 'Write the AP-against-step PNG here.')
  flags.DEFINE_bool('quick', False, 'A tiny run that checks the code path.')
  flags.DEFINE_bool('stock_evaluator', True, 'Cross-check the last checkpoint with '
                    'the stock evaluator.')
  flags.DEFINE_bool('report_only', False, 'Only rewrite the report (and plot) from '
                    'work_dir/results.json and run.json of an earlier run.')


def _log(message):
  print(f'[context {time.strftime("%H:%M:%S")}] {message}', file=sys.stderr, flush=True)


def _venv_python():
  return sys.executable


def write_configs(run_dir, data_dir, num_steps, batch_size, learning_rate):
  """{model: pipeline.config path} of the pair, in run_dir/<model>/."""
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  from gc_detection import atomic_files  # pylint: disable=g-import-not-at-top
  from gc_detection.tools import context_configs  # pylint: disable=g-import-not-at-top
  settings = dict(data_dir=data_dir, num_steps=num_steps, batch_size=batch_size)
  if learning_rate:
    settings['learning_rate'] = learning_rate
  paths = {}
  for model, source in (('stock', context_configs.STOCK_SOURCE),
                        ('gc', context_configs.GC_SOURCE)):
    paths[model] = os.path.join(run_dir, model, 'pipeline.config')
    atomic_files.write_text(paths[model], text_format.MessageToString(
        context_configs.pipeline_for(source, **settings)))
  return paths


def train(config, model_dir, seed, checkpoint_every_n, log_path):
  """scripts/train.sh (the stock trainer), seeded; returns wall seconds."""
  started = time.perf_counter()
  with open(log_path, 'w') as log_file:
    completed = subprocess.run(
        ['bash', os.path.join(REPO_ROOT, 'scripts', 'train.sh'),
         f'--pipeline_config_path={config}', f'--model_dir={model_dir}',
         f'--checkpoint_every_n={checkpoint_every_n}'],
        cwd=REPO_ROOT, stdout=log_file, stderr=subprocess.STDOUT, check=False,
        env=dict(os.environ, GC_DETECTION_SEED=str(seed)))
  if completed.returncode != 0:
    raise RuntimeError(f'training {model_dir} failed (exit {completed.returncode}); '
                       f'see {log_path}')
  return time.perf_counter() - started


def evaluate(config, model_dir, data_paths, output):
  """Scores every checkpoint with pycocotools (a fresh process); returns the list."""
  completed = subprocess.run(
      [_venv_python(), '-m', 'gc_detection.tools.evaluate_checkpoints',
       f'--pipeline_config_path={config}', f'--model_dir={model_dir}',
       f'--coco_annotations_file={data_paths["val_coco"]}',
       f'--image_dir={data_paths["val_images"]}', f'--output={output}'],
      cwd=REPO_ROOT, capture_output=True, text=True, check=False)
  if completed.returncode != 0:
    raise RuntimeError(f'evaluating {model_dir} failed: {completed.stderr[-2000:]}')
  with open(output) as metrics:
    return json.load(metrics)


def stock_evaluator_ap(config, model_dir, log_path):
  """AP (%) of model_dir's latest checkpoint by model_main_tf2 --checkpoint_dir."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  eval_dir = os.path.join(model_dir, 'stock_eval')
  with open(log_path, 'w') as log_file:
    subprocess.run(
        ['bash', os.path.join(REPO_ROOT, 'scripts', 'train.sh'),
         f'--pipeline_config_path={config}', f'--model_dir={eval_dir}',
         f'--checkpoint_dir={model_dir}', '--eval_timeout=0'],
        cwd=REPO_ROOT, stdout=log_file, stderr=subprocess.STDOUT, check=False)
  values = {}
  for path in tf.io.gfile.glob(os.path.join(eval_dir, 'eval', 'events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == 'DetectionBoxes_Precision/mAP':
          values[event.step] = 100 * float(tf.make_ndarray(value.tensor))
  return values[max(values)] if values else None


def attention_shares(config, model_dir, data_dir):
  """benchmarks/context_attention.py on a GC run (a fresh process); returns its dict."""
  completed = subprocess.run(
      [_venv_python(), os.path.join(REPO_ROOT, 'benchmarks', 'context_attention.py'),
       f'--pipeline_config_path={config}', f'--checkpoint={model_dir}',
       f'--data_dir={data_dir}'], cwd=REPO_ROOT, capture_output=True, text=True,
      check=False)
  if completed.returncode != 0:
    raise RuntimeError(f'attention shares of {model_dir} failed: {completed.stderr[-2000:]}')
  return json.loads(completed.stdout.strip().splitlines()[-1])


def plot(results, path, title):
  """AP against step: one thin line per run, the mean over seeds bold."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  from gc_detection import atomic_files  # pylint: disable=g-import-not-at-top

  figure, axes = pyplot.subplots(figsize=(7, 4.5), dpi=110)
  colours = {'stock': 'tab:blue', 'gc': 'tab:red'}
  for model in MODELS:
    runs = [run for run in results if run['model'] == model]
    for run in runs:
      axes.plot([m['step'] for m in run['metrics']], [m['AP'] for m in run['metrics']],
                color=colours[model], alpha=0.35, linewidth=1)
    steps = [m['step'] for m in runs[0]['metrics']]
    mean = [statistics.mean(run['metrics'][i]['AP'] for run in runs)
            for i in range(len(steps))]
    axes.plot(steps, mean, color=colours[model], linewidth=2.5,
              label=f'{LABELS[model]} (mean of {len(runs)} seed(s))')
  axes.set_xlabel('training step')
  axes.set_ylabel('COCO AP (%) on held-out images')
  axes.set_title(title, fontsize=10)
  axes.grid(alpha=0.3)
  axes.legend()
  figure.tight_layout()
  atomic_files.write_atomically(path, lambda temporary: figure.savefig(temporary,
                                                                        format='png'))
  pyplot.close(figure)


def _percent(value):
  return '-' if value is None else f'{value:.0f}%'


def _mean_or_none(values):
  values = [value for value in values if value is not None]
  return statistics.mean(values) if values else None


def report(results, settings, wall_seconds, plot_path):
  """The Markdown section."""
  import markdown_report  # pylint: disable=g-import-not-at-top
  from gc_detection.data import context_scenes  # pylint: disable=g-import-not-at-top

  classes = list(context_scenes.CLASSES)
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
      '## Context benchmark: does global context change what the detector sees?',
      markdown_report.markdown_table(['item', 'value'], markdown_report.machine_rows()),
      f'- Command: `benchmarks/context.py {settings["command"]}`; wall time '
      f'{wall_seconds / 60:.1f} min.',
      f'- Data: gc_detection.data.context_scenes, {settings["num_train"]} training and '
      f'{settings["num_val"]} held-out {settings["size"]}x{settings["size"]} images '
      f'(data seed {settings["data_seed"]}); classes {", ".join(classes)}: the same '
      'yellow disk, told apart only by a band or a companion object along an image '
      f'edge at least {settings["min_cue_distance"]} px beyond the box (grown by one '
      f'C4 cell): outside the {context_scenes.C4_RECEPTIVE_FIELD} px receptive field '
      'of every C4 feature the stock box classifier reads.',
      f'- Training: the pipeline_configs/context pair, random weights, '
      f'{settings["num_steps"]} steps at batch {settings["batch_size"]}, Adam '
      f'(rate {settings["learning_rate"]:g} after a 50-step warm-up), '
      '`scripts/train.sh` (the stock model_main_tf2), `GC_DETECTION_SEED` = seed.',
      '- Scores: pycocotools COCOeval on the held-out images (AP = IoU .50:.95); '
      '"stock eval AP" = the OD API\'s own evaluator on the same last checkpoint.',
      markdown_report.markdown_table(
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
        f'- Where the GC model looks (benchmarks/context_attention.py; the C4 cell under '
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


def main(argv):
  del argv
  values = flags.FLAGS
  sys.path.insert(0, REPO_ROOT)
  from gc_detection.data import context_scenes  # pylint: disable=g-import-not-at-top
  from gc_detection.tools import context_configs  # pylint: disable=g-import-not-at-top
  from gc_detection.tools import make_context_dataset  # pylint: disable=g-import-not-at-top

  if values.report_only:
    if not values.work_dir:
      sys.exit('--report_only needs the --work_dir of an earlier run')
    with open(os.path.join(values.work_dir, 'results.json')) as results_file:
      results = json.load(results_file)
    with open(os.path.join(values.work_dir, 'run.json')) as run_file:
      run_info = json.load(run_file)
    for run in results:  # runs made before the attention shares were measured
      if run['model'] == 'gc' and 'attention' not in run:
        run['attention'] = attention_shares(
            os.path.join(values.work_dir, 'runs', 'gc', 'pipeline.config'),
            run['model_dir'], os.path.join(values.work_dir, 'data'))
    from gc_detection import atomic_files  # pylint: disable=g-import-not-at-top
    atomic_files.write_text(os.path.join(values.work_dir, 'results.json'),
                            json.dumps(results, indent=2))
    _write_report(results, run_info['settings'], run_info['wall_seconds'], values)
    return
  if values.quick:
    num_train, num_val, steps, batch, seeds = 8, 4, 100, 1, ['0']
  else:
    num_train, num_val, steps, batch = (values.num_train, values.num_val,
                                        values.num_steps, values.batch_size)
    seeds = values.seeds
  started = time.perf_counter()
  work_dir = values.work_dir or tempfile.mkdtemp(prefix='gc_context_')
  spec = context_scenes.SceneSpec()
  _log(f'writing the dataset into {work_dir}/data')
  data_paths = make_context_dataset.write_dataset(
      os.path.join(work_dir, 'data'), num_train, num_val, values.data_seed, spec,
      show_progress=False)
  configs = write_configs(os.path.join(work_dir, 'runs'), os.path.join(work_dir, 'data'),
                          steps, batch, values.learning_rate)
  results = []
  for seed in seeds:
    for model in MODELS:
      model_dir = os.path.join(work_dir, 'runs', model, f'seed_{seed}')
      _log(f'training {model}, seed {seed}: {steps} steps at batch {batch}')
      seconds = train(configs[model], model_dir, seed, values.checkpoint_every_n,
                      model_dir + '.train.log')
      metrics = evaluate(configs[model], model_dir, data_paths,
                         os.path.join(model_dir, 'coco_metrics.json'))
      run = {'model': model, 'seed': seed, 'train_seconds': seconds, 'metrics': metrics,
             'model_dir': model_dir}
      if model == 'gc':
        run['attention'] = attention_shares(configs[model], model_dir,
                                            os.path.join(work_dir, 'data'))
      if values.stock_evaluator:
        run['stock_evaluator_ap'] = stock_evaluator_ap(configs[model], model_dir,
                                                       model_dir + '.eval.log')
      _log(f'{model}, seed {seed}: AP by step ' + ', '.join(
          f'{m["step"]}: {m["AP"]:.1f}' for m in metrics) +
           f'; stock evaluator {run.get("stock_evaluator_ap")}')
      results.append(run)
  from gc_detection import atomic_files  # pylint: disable=g-import-not-at-top
  atomic_files.write_text(os.path.join(work_dir, 'results.json'),
                          json.dumps(results, indent=2))
  command = ' '.join(arg for arg in sys.argv[1:] if not arg.startswith('--work_dir'))
  settings = {'command': command, 'num_train': num_train, 'num_val': num_val,
              'size': spec.size, 'data_seed': values.data_seed,
              'min_cue_distance': spec.min_cue_distance, 'num_steps': steps,
              'batch_size': batch, 'seeds': seeds, 'work_dir': work_dir,
              'learning_rate': values.learning_rate or context_configs.LEARNING_RATE}
  wall_seconds = time.perf_counter() - started
  atomic_files.write_text(os.path.join(work_dir, 'run.json'), json.dumps(
      {'settings': settings, 'wall_seconds': wall_seconds}, indent=2))
  _write_report(results, settings, wall_seconds, values)


def _write_report(results, settings, wall_seconds, values):
  """Plot, Markdown section (if asked) and the table on stdout."""
  plot_path = values.plot or os.path.join(settings['work_dir'], 'context_ap_vs_step.png')
  plot(results, plot_path, f'Context dataset: {len(settings["seeds"])} seed(s), '
       f'{settings["num_steps"]} steps, batch {settings["batch_size"]}')
  text, gain = report(results, settings, wall_seconds, plot_path if values.plot else None)
  if values.markdown:
    import markdown_report  # pylint: disable=g-import-not-at-top
    markdown_report.replace_section(values.markdown, 'context', text)
  print(text)
  _log(f'GC - stock mean AP {gain:+.1f}; results in {settings["work_dir"]}/results.json, '
       f'plot {plot_path}')

if __name__ == '__main__':
  _define_flags()
  app.run(main)
