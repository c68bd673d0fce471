r"""Far-cue segmentation benchmark: stock ResNet-50-FPN vs the same + GC, Model Garden's trainer.

The strips (gc_detection.data.far_cue_strips) hold identical yellow disks in
three classes (sun, egg_yolk, street_lamp), told apart only by a band at one
end of the strip, farther from every disk pixel than half the receptive field
of the stock model's logits. Both models:

- are the registered experiments seg_resnet50_fpn_far_cue and
  seg_resnet50_fpn_gc_far_cue as registered (same data, steps, batch,
  optimizer, head; they differ only in task.model.backbone). Their data path
  is relative (data/far_cue_segmentation/...): the trainer runs in the work
  dir, where the benchmark writes the dataset under that path;
- train from random weights with `python -m official.vision.train
  --mode=train_and_eval` (Model Garden's own trainer, unmodified), with
  task.seed (weight initialisation) and task.train_data.seed = the run's seed;
- are scored by the trainer's own evaluation on the held-out strips every
  validation_interval steps: mIoU, fwIoU, mACC, pACC (the paper's Table 4
  columns) and the per-class IoU.

Runs alternate (stock, GC, stock, GC, ...) so that machine noise hits both.
Writes the Markdown section (per run and mean over seeds; the target "GC beats
stock by >= 5 mIoU"), a PNG of mIoU against step and a PNG of predicted masks
beside the ground truth (benchmarks/far_cue_segmentation_pictures.py).

Usage (defaults: 2 seeds x 2 models x 600 steps):
  .venv/bin/python benchmarks/far_cue_segmentation.py --markdown=BENCHMARKS.md \
      --plot=benchmarks/figures/far_cue_segmentation_miou_vs_step.png \
      --pictures=benchmarks/figures/far_cue_segmentation_masks.png
  --quick: 8 train / 4 val strips, 2 steps, one seed (checks the code path;
  says nothing about who wins).
"""
import os
import statistics
import sys
import time

from absl import app

# benchmarks/ is on sys.path when run as a script.
import harness
import markdown_report
import model_garden_runs
import step_plots
from gc_detection.reports.markdown import markdown_table

FLAGS = model_garden_runs.FLAGS
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = {'stock': 'seg_resnet50_fpn_far_cue', 'gc': 'seg_resnet50_fpn_gc_far_cue'}
MODELS = model_garden_runs.MODELS
LABELS = {'stock': 'ResNet-50-FPN (stock)', 'gc': 'ResNet-50-FPN + GC'}
METRICS = ('mIoU', 'fwIoU', 'mACC', 'pACC')
TARGET_MIOU_GAIN = 5.0
# A run whose last evaluation is this far below its best is named in the report.
FALL_POINTS = 5.0


def _log(message):
  print(f'[far_cue_segmentation {time.strftime("%H:%M:%S")}] {message}',
        file=sys.stderr, flush=True)


def validation_curve(model_dir, num_classes):
  """[{'step', 'mIoU', ..., 'iou': [per class]}] (percent) from the trainer's events."""
  ious = [f'iou/{c}' for c in range(num_classes)]
  curve = model_garden_runs.validation_scores(model_dir, list(METRICS) + ious, 'mIoU')
  return [{'step': scores['step'], **{name: scores[name] for name in METRICS},
           'iou': [scores.get(tag) for tag in ious]} for scores in curve]


def plot(results, path, title):
  """mIoU against step: one thin line per run, the mean over seeds bold."""
  step_plots.plot_runs(results, path, title, LABELS, 'curve', 'mIoU',
                       'mIoU (%) on held-out strips')


def report(results, settings, wall_seconds, plot_path, pictures_path):
  """The Markdown section and the mean mIoU gain."""
  from gc_detection.data import far_cue_strips  # pylint: disable=g-import-not-at-top
  disk_classes = [far_cue_strips.CLASS_NAMES.index(disk) for _, disk in far_cue_strips.SCENES]

  def disk_iou(final):
    return statistics.mean(final['iou'][c] or 0.0 for c in disk_classes)

  def best(run):
    return max(run['curve'], key=lambda m: m['mIoU'])

  rows, means, best_means, falls = [], {}, {}, []
  for run in results:
    final = run['curve'][-1]
    rows.append([LABELS[run['model']], run['seed'], final['step']] +
                [f'{final[name]:.1f}' for name in METRICS] +
                [f'{disk_iou(final):.1f}', f'{best(run)["mIoU"]:.1f} ({best(run)["step"]})',
                 f'{run["train_seconds"] / 60:.1f}'])
    if best(run)['mIoU'] - final['mIoU'] > FALL_POINTS:
      falls.append(f'{LABELS[run["model"]]}, seed {run["seed"]}: its last evaluation '
                   f'(step {final["step"]}) is {best(run)["mIoU"] - final["mIoU"]:.1f} '
                   f'mIoU below its best (step {best(run)["step"]})')
  for model in MODELS:
    runs = [run for run in results if run['model'] == model]
    finals = [run['curve'][-1] for run in runs]
    means[model] = {name: statistics.mean(f[name] for f in finals) for name in METRICS}
    best_means[model] = statistics.mean(best(run)['mIoU'] for run in runs)
    rows.append([f'**{LABELS[model]}, mean**', '', ''] +
                [f'**{means[model][name]:.1f}**' for name in METRICS] +
                [f'{statistics.mean(disk_iou(f) for f in finals):.1f}',
                 f'{best_means[model]:.1f}', ''])
  gain = means['gc']['mIoU'] - means['stock']['mIoU']
  best_gain = best_means['gc'] - best_means['stock']
  verdict = 'MET' if gain >= TARGET_MIOU_GAIN else 'MISSED'
  best_verdict = 'MET' if best_gain >= TARGET_MIOU_GAIN else 'MISSED'
  spec = settings['spec']
  lines = [
      '## Far-cue segmentation: stock ResNet-50-FPN vs + GC (Model Garden trainer)',
      markdown_report.machine_table(),
      f'- Command: `benchmarks/far_cue_segmentation.py {settings["command"]}`; wall '
      f'time {wall_seconds / 60:.1f} min.',
      f'- Data: gc_detection.data.far_cue_strips, {settings["num_train"]} training and '
      f'{settings["num_val"]} held-out {spec["height"]}x{spec["width"]} strips (data '
      f'seed {settings["data_seed"]}); 7 classes (background, the three cue bands, the '
      'three disk classes sun, egg_yolk, street_lamp). The disks look the same in every '
      f'class; the band that tells them apart is at least {spec["min_cue_distance"]} px '
      'from every disk pixel, beyond half the '
      f'{far_cue_strips.SEGMENTATION_RECEPTIVE_FIELD} px receptive field of the stock '
      'model\'s logits.',
      f'- Training: the registered experiments {EXPERIMENTS["stock"]} and '
      f'{EXPERIMENTS["gc"]} as registered (random weights, {settings["num_steps"]} steps '
      f'at batch {settings["batch_size"]}, input {settings["input_size"]}), `python -m '
      'official.vision.train --mode=train_and_eval`, task.seed = '
      'task.train_data.seed = seed.',
      '- Scores: the trainer\'s own evaluation of the last checkpoint on the held-out '
      'strips, in percent; disk IoU = mean IoU of the three disk classes (a model blind '
      'to the cue cannot tell them apart).',
      markdown_table(['model', 'seed', 'step'] + list(METRICS) +
                     ['disk IoU', 'best mIoU (step)', 'train min'], rows),
      f'- GC - stock, mean mIoU over seeds at the last checkpoint: **{gain:+.1f}** '
      f'(target >= {TARGET_MIOU_GAIN:g}: {verdict}); at each run\'s best evaluation: '
      f'{best_gain:+.1f} ({best_verdict}).',
  ]
  if falls:
    lines.append('- Unstable runs (from random weights at batch 4; training mode '
                 'normalises with batch statistics, evaluation with the moving ones): '
                 + '; '.join(falls) + '.')
  resumed = model_garden_runs.resumed_runs_note(results, LABELS)
  if resumed:
    lines.append(resumed)
  if settings.get('load_average') is not None:
    lines.append(f'- Machine load: 15-minute load average {settings["load_average"]:.1f} '
                 'at the end of the run (2 cores); train min grows with it.')
  if plot_path:
    lines.append(f'![mIoU against step]({os.path.relpath(plot_path, REPO_ROOT)})')
  if pictures_path:
    lines.append('Held-out strips (seed-0 models): image, ground truth, stock, GC.\n\n'
                 f'![Predicted masks]({os.path.relpath(pictures_path, REPO_ROOT)})')
  return '\n\n'.join(lines) + '\n', gain


def main(argv):
  del argv
  from gc_detection.data import far_cue_segmentation_dataset  # pylint: disable=g-import-not-at-top
  from gc_detection.data import far_cue_strips  # pylint: disable=g-import-not-at-top

  if FLAGS.report_only:
    _write_outputs(*harness.earlier_run(FLAGS.work_dir))
    return

  def curve_of(model_dir):
    curve = validation_curve(model_dir, len(far_cue_strips.CLASS_NAMES))
    _log(f'{model_dir}: mIoU by step '
         + ', '.join(f'{m["step"]}: {m["mIoU"]:.1f}' for m in curve))
    return curve

  _write_outputs(*model_garden_runs.run(
      EXPERIMENTS, far_cue_strips.StripSpec(), far_cue_segmentation_dataset.write_dataset,
      curve_of, 'far_cue_seg', _log))


def _write_outputs(results, settings, wall_seconds):
  """The plot, the pictures, the Markdown section (if asked) and the table on stdout."""
  from gc_detection.data import far_cue_strips  # pylint: disable=g-import-not-at-top
  import far_cue_segmentation_pictures  # pylint: disable=g-import-not-at-top
  work_dir, seeds = settings['work_dir'], settings['seeds']
  plot_path = FLAGS.plot or os.path.join(work_dir, 'far_cue_segmentation_miou.png')
  plot(results, plot_path, f'Far-cue strips: {len(seeds)} seed(s), '
       f'{settings["num_steps"]} steps, batch {settings["batch_size"]}')
  pictures_path = FLAGS.pictures or os.path.join(work_dir, 'far_cue_segmentation_masks.png')
  first = {run['model']: run['model_dir'] for run in results if run['seed'] == seeds[0]}
  spec = far_cue_strips.StripSpec(**settings['spec'])
  shown = list(far_cue_strips.generate(settings['data_seed'] + 1,
                                       min(4, settings['num_val']), spec, 'val'))
  far_cue_segmentation_pictures.draw(EXPERIMENTS, first, shown, pictures_path)
  text, gain = report(results, settings, wall_seconds, plot_path if FLAGS.plot else None,
                      pictures_path if FLAGS.pictures else None)
  if FLAGS.markdown:
    markdown_report.replace_section(FLAGS.markdown, 'far_cue_segmentation', text)
  print(text)
  _log(f'GC - stock mean mIoU {gain:+.1f}; results in {work_dir}/results.json')

if __name__ == '__main__':
  app.run(main)
