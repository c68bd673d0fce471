r"""Far-cue panoptic benchmark: stock Panoptic FPN R-50 vs the same + GC, Model Garden's trainer.

The strips (gc_detection.data.far_cue_panoptic) hold identical yellow disks
(things: sun, egg_yolk, street_lamp) over an identical brown ground (stuff:
cloud_bank, tablecloth, pavement), both named only by a cue band at one end
of the strip, beyond every convolution of the stock model (only the
GroupNorm statistics of the semantic head, per image, see the whole strip).
Both models:

- are the registered experiments panoptic_fpn_resnet50_far_cue and
  panoptic_fpn_resnet50_gc_far_cue as registered (same data, steps, batch,
  optimizer, heads; they differ only in task.model.backbone), trained in the
  work dir where the benchmark writes the dataset under their relative path;
- train from random weights with `python -m official.vision.train
  --mode=train_and_eval`, task.seed = task.train_data.seed = the run's seed;
- are scored by the trainer's own evaluation of the held-out strips every
  validation_interval steps: PQ, SQ, RQ, PQ^St, PQ^Th (the paper's Table 5
  columns), with the COCO box and mask AP beside them.

Runs alternate (stock, GC, stock, GC, ...). Writes the Markdown section (per
run and mean over seeds; the target "GC beats stock by >= 3 PQ"), a PNG of
PQ against step and a PNG of panoptic predictions beside the ground truth
(benchmarks/far_cue_panoptic_pictures.py).

Usage (defaults: 2 seeds x 2 models x the experiments' steps):
  .venv/bin/python benchmarks/far_cue_panoptic.py --markdown=BENCHMARKS.md \
      --plot=benchmarks/figures/far_cue_panoptic_pq_vs_step.png \
      --pictures=benchmarks/figures/far_cue_panoptic_predictions.png
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

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = {'stock': 'panoptic_fpn_resnet50_far_cue',
               'gc': 'panoptic_fpn_resnet50_gc_far_cue'}
MODELS = model_garden_runs.MODELS
LABELS = {'stock': 'Panoptic FPN R-50 (stock)', 'gc': 'Panoptic FPN R-50 + GC'}
# The paper's Table 5 columns, then box and mask AP of the stock COCO evaluator.
METRICS = ('PQ', 'SQ', 'RQ', 'PQ_st', 'PQ_th')
DETECTION_METRICS = ('AP', 'mask_AP')
TARGET_PQ_GAIN = 3.0
FALL_POINTS = 5.0

FLAGS = model_garden_runs.FLAGS


def _log(message):
  print(f'[far_cue_panoptic {time.strftime("%H:%M:%S")}] {message}', file=sys.stderr,
        flush=True)


def validation_curve(model_dir):
  """[{'step', 'PQ', ..., 'AP', 'mask_AP'}] (percent) from the trainer's events."""
  return model_garden_runs.validation_scores(
      model_dir, list(METRICS) + list(DETECTION_METRICS), 'PQ')


def _best(run):
  return max(run['curve'], key=lambda scores: scores['PQ'])


def report(results, settings, wall_seconds, plot_path, pictures_path):
  """The Markdown section and the mean PQ gain."""
  rows, means, best_means, falls = [], {}, {}, []
  columns = METRICS + DETECTION_METRICS
  for run in results:
    final, best = run['curve'][-1], _best(run)
    rows.append([LABELS[run['model']], run['seed'], final['step']]
                + [f'{final.get(name, float("nan")):.1f}' for name in columns]
                + [f'{best["PQ"]:.1f} ({best["step"]})', f'{run["train_seconds"] / 60:.1f}'])
    if best['PQ'] - final['PQ'] > FALL_POINTS:
      falls.append(f'{LABELS[run["model"]]}, seed {run["seed"]}: its last evaluation '
                   f'(step {final["step"]}) is {best["PQ"] - final["PQ"]:.1f} PQ below '
                   f'its best (step {best["step"]})')
  for model in MODELS:
    runs = [run for run in results if run['model'] == model]
    finals = [run['curve'][-1] for run in runs]
    means[model] = {name: statistics.mean(f.get(name, float('nan')) for f in finals)
                    for name in columns}
    best_means[model] = statistics.mean(_best(run)['PQ'] for run in runs)
    rows.append([f'**{LABELS[model]}, mean**', '', '']
                + [f'**{means[model][name]:.1f}**' for name in columns]
                + [f'{best_means[model]:.1f}', ''])
  gain = means['gc']['PQ'] - means['stock']['PQ']
  best_gain = best_means['gc'] - best_means['stock']
  verdict = 'MET' if gain >= TARGET_PQ_GAIN else 'MISSED'
  best_verdict = 'MET' if best_gain >= TARGET_PQ_GAIN else 'MISSED'
  spec = settings['spec']
  differences = ', '.join(f'{name} {means["gc"][name] - means["stock"][name]:+.1f}'
                          for name in METRICS[1:])
  lines = [
      '## Far-cue panoptic: stock Panoptic FPN R-50 vs + GC (Model Garden trainer)',
      markdown_report.machine_table(),
      f'- Command: `benchmarks/far_cue_panoptic.py {settings["command"]}`; wall time '
      f'{wall_seconds / 60:.1f} min.',
      f'- Data: gc_detection.data.far_cue_panoptic, {settings["num_train"]} training and '
      f'{settings["num_val"]} held-out {spec["height"]}x{spec["width"]} strips (data seed '
      f'{settings["data_seed"]}); 3 thing classes (the disks: sun, egg_yolk, '
      'street_lamp) and 7 stuff classes (background, the three cue bands, the three '
      'grounds: cloud_bank, tablecloth, pavement). Disks and ground look the same in '
      f'every scene; the band that names them is more than {spec["min_cue_distance"]} px '
      'from every disk and ground pixel, beyond every convolution of the stock model '
      'there (its semantic, box and mask outputs have zero gradient with respect to the '
      'band with GroupNorm statistics held fixed; those statistics, per image over all '
      'pixels in the semantic head of both models, are the one stock path to the band; '
      'tests/test_far_cue_panoptic_dataset.py).',
      f'- Training: the registered experiments {EXPERIMENTS["stock"]} and '
      f'{EXPERIMENTS["gc"]} as registered (random weights, {settings["num_steps"]} steps '
      f'at batch {settings["batch_size"]}, input {settings["input_size"]}), `python -m '
      'official.vision.train --mode=train_and_eval`, task.seed = task.train_data.seed = '
      'seed.',
      '- Scores: the trainer\'s own evaluation of the last checkpoint on the held-out '
      'strips, in percent: panoptic quality (PQ = SQ x RQ; PQ_st over the stuff, PQ_th '
      'over the thing categories) and official.vision\'s COCO box and mask AP.',
      markdown_table(['model', 'seed', 'step'] + list(columns)
                     + ['best PQ (step)', 'train min'], rows),
      f'- GC - stock, mean PQ over seeds at the last checkpoint: **{gain:+.1f}** '
      f'(target >= {TARGET_PQ_GAIN:g}: {verdict}); {differences}; at each run\'s best '
      f'evaluation: {best_gain:+.1f} PQ ({best_verdict}).',
  ]
  if falls:
    lines.append('- Unstable runs: ' + '; '.join(falls) + '.')
  resumed = model_garden_runs.resumed_runs_note(results, LABELS)
  if resumed:
    lines.append(resumed)
  if settings.get('load_average') is not None:
    lines.append(f'- Machine load: 15-minute load average {settings["load_average"]:.1f} '
                 'at the end of the run (2 cores); train min grows with it.')
  if plot_path:
    lines.append(f'![PQ against step]({os.path.relpath(plot_path, REPO_ROOT)})')
  if pictures_path:
    lines.append('Held-out strips (seed-0 models): image, ground truth, stock, GC; '
                 'colour by category, instances outlined.\n\n'
                 f'![Panoptic predictions]({os.path.relpath(pictures_path, REPO_ROOT)})')
  return '\n\n'.join(lines) + '\n', gain


def main(argv):
  del argv
  from gc_detection.data import far_cue_panoptic  # pylint: disable=g-import-not-at-top
  from gc_detection.data import far_cue_panoptic_dataset  # pylint: disable=g-import-not-at-top

  if FLAGS.report_only:
    _write_outputs(*harness.earlier_run(FLAGS.work_dir))
    return

  def curve_of(model_dir):
    curve = validation_curve(model_dir)
    _log(f'{model_dir}: PQ by step '
         + ', '.join(f'{m["step"]}: {m["PQ"]:.1f}' for m in curve))
    return curve

  _write_outputs(*model_garden_runs.run(
      EXPERIMENTS, far_cue_panoptic.PANOPTIC_SPEC, far_cue_panoptic_dataset.write_dataset,
      curve_of, 'far_cue_pan', _log))


def _write_outputs(results, settings, wall_seconds):
  """The plot, the pictures, the Markdown section (if asked) and the table on stdout."""
  from gc_detection.data import far_cue_panoptic  # pylint: disable=g-import-not-at-top
  from gc_detection.data import far_cue_strips  # pylint: disable=g-import-not-at-top
  import far_cue_panoptic_pictures  # pylint: disable=g-import-not-at-top
  work_dir, seeds = settings['work_dir'], settings['seeds']
  plot_path = FLAGS.plot or os.path.join(work_dir, 'far_cue_panoptic_pq.png')
  step_plots.plot_runs(results, plot_path,
                       f'Far-cue panoptic strips: {len(seeds)} seed(s), '
                       f'{settings["num_steps"]} steps, batch {settings["batch_size"]}',
                       LABELS, 'curve', 'PQ', 'PQ (%) on held-out strips')
  pictures_path = FLAGS.pictures or os.path.join(work_dir, 'far_cue_panoptic.png')
  first = {run['model']: run['model_dir'] for run in results if run['seed'] == seeds[0]}
  spec = far_cue_strips.StripSpec(**settings['spec'])
  shown = list(far_cue_panoptic.generate(settings['data_seed'] + 1,
                                         min(4, settings['num_val']), spec, 'val'))
  far_cue_panoptic_pictures.draw(EXPERIMENTS, first, shown, pictures_path)
  text, gain = report(results, settings, wall_seconds, plot_path if FLAGS.plot else None,
                      pictures_path if FLAGS.pictures else None)
  if FLAGS.markdown:
    markdown_report.replace_section(FLAGS.markdown, 'far_cue_panoptic', text)
  print(text)
  _log(f'GC - stock mean PQ {gain:+.1f}; results in {work_dir}/results.json')


if __name__ == '__main__':
  app.run(main)
