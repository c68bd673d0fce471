r"""Tabulates the metrics a stock evaluation wrote, run beside run, like the paper.

Three metric sets (`MetricSet`), each read from the TensorBoard summaries a
stock program writes, and nothing computed here (gc_detection.od_api.
checkpoint_evaluation is what runs a model):

- DETECTION (the default), Tables 1-2 of the paper: the stock OD API
  evaluator (`model_main_tf2 --checkpoint_dir=...`, or
  `scripts/train.sh --checkpoint_dir=...`) writes its COCO box metrics under
  MODEL_DIR/eval: AP, AP_s, AP_m, AP_l, AP@.5, AP@.75, AR@100, AR_s@100,
  AR_m@100, AR_l@100. COCO reports -1 when the evaluation set has no ground
  truth of a size (for example no large objects); the table shows that as n/a.
- SEGMENTATION, Table 4: Model Garden's trainer
  (`python -m official.vision.train --mode=train_and_eval`) writes the
  validation summaries of gc_detection.model_garden.segmentation_task under
  MODEL_DIR/validation: mIoU, fwIoU, mACC, pACC.
- PANOPTIC, Table 5: the same trainer's validation summaries of
  gc_detection.model_garden.panoptic_task: PQ, SQ, RQ, PQ_st, PQ_th.

Comparing a baseline with its +GC model means digging the same numbers out of
several event files; this does that: one Markdown row per run with the set's
metrics in percent (the summaries hold fractions), taken at the run's latest
evaluated step (shown in the table), and optionally a PNG of the set's first
metric (AP, mIoU, PQ) against the step for every run.

Usage:
  python -m gc_detection.cli.tabulate_evaluator_metrics \
      --run=baseline=models/frcnn_r50 --run=gc=models/frcnn_r50_gc \
      [--metrics=detection|segmentation|panoptic] [--markdown_out=report.md] \
      [--plot_out=ap.png]

Events are read from MODEL_DIR/eval (or MODEL_DIR/validation) and its
subdirectories; a directory that holds event files itself also works (e.g.
MODEL_DIR/eval/NAME when the eval input has a name). Reading them is
gc_detection.reports.summary_events.
"""
import collections
import dataclasses
import os
from typing import Optional, Tuple

from gc_detection import atomic_files
from gc_detection import user_errors
from gc_detection.reports import markdown
from gc_detection.reports import summary_events


@dataclasses.dataclass(frozen=True)
class MetricSet:
  """What one kind of evaluation writes, and how the report shows it.

  Attributes:
    name: the command's --metrics value.
    metrics: (column, summary tag) pairs in the order of the paper's table; the
      first is the one plotted against the step, and a step counts as
      evaluated when its tag was written.
    events_subdir: where under MODEL_DIR the program writes the summaries.
    kind: 'evaluation' or 'validation', as the error messages name the files.
    description: what the metrics are, for error messages.
    hint: how to write the event files, formatted with model_dir.
    missing_fix: how to get the metrics into them, formatted with hint.
    plot_label: the plot's y-axis label.
    scale: the table and plot show value * scale (fractions as percent).
    not_available_note: if set, a negative value (COCO's -1) shows as n/a and
      this note follows the table; if None, values are shown as they are.
  """
  name: str
  metrics: Tuple[Tuple[str, str], ...]
  events_subdir: str
  kind: str
  description: str
  hint: str
  missing_fix: str
  plot_label: str
  scale: float = 100.0
  not_available_note: Optional[str] = None

  @property
  def columns(self):
    return [column for column, _ in self.metrics]

  @property
  def curve_column(self):
    return self.metrics[0][0]

  @property
  def curve_tag(self):
    return self.metrics[0][1]


DETECTION = MetricSet(
    name='detection',
    # Tags of the OD API's CocoDetectionEvaluator.
    metrics=(
        ('AP', 'DetectionBoxes_Precision/mAP'),
        ('AP_s', 'DetectionBoxes_Precision/mAP (small)'),
        ('AP_m', 'DetectionBoxes_Precision/mAP (medium)'),
        ('AP_l', 'DetectionBoxes_Precision/mAP (large)'),
        ('AP@.5', 'DetectionBoxes_Precision/mAP@.50IOU'),
        ('AP@.75', 'DetectionBoxes_Precision/mAP@.75IOU'),
        ('AR@100', 'DetectionBoxes_Recall/AR@100'),
        ('AR_s@100', 'DetectionBoxes_Recall/AR@100 (small)'),
        ('AR_m@100', 'DetectionBoxes_Recall/AR@100 (medium)'),
        ('AR_l@100', 'DetectionBoxes_Recall/AR@100 (large)'),
    ),
    events_subdir='eval',
    kind='evaluation',
    description='COCO detection metrics',
    hint=('run the evaluator first: scripts/train.sh --pipeline_config_path=... '
          '--model_dir={model_dir} --checkpoint_dir={model_dir}'),
    missing_fix='evaluate with metrics_set: "coco_detection_metrics" ({hint})',
    plot_label='AP (%), COCO box',
    not_available_note=('n/a: COCO reports -1, the evaluation set has no ground '
                        'truth of that size.'))

SEGMENTATION = MetricSet(
    name='segmentation',
    # The names gc_detection.model_garden.segmentation_scores.METRIC_NAMES
    # (not imported: it imports TensorFlow); fractions in [0, 1].
    metrics=(('mIoU', 'mIoU'), ('fwIoU', 'fwIoU'), ('mACC', 'mACC'), ('pACC', 'pACC')),
    events_subdir='validation',
    kind='validation',
    description='segmentation metrics',
    hint=('train with evaluation first: python -m official.vision.train '
          '--experiment=... --mode=train_and_eval --model_dir={model_dir}'),
    missing_fix=('train an experiment of gc_detection.model_garden.'
                 'segmentation_experiments, whose task writes mIoU, fwIoU, mACC '
                 'and pACC (the stock task writes only mean_iou); {hint}'),
    plot_label='mIoU (%)')

PANOPTIC = MetricSet(
    name='panoptic',
    # The names gc_detection.model_garden.panoptic_task.PANOPTIC_SCORES, in
    # the paper's Table 5 order (not imported: it imports TensorFlow).
    metrics=(('PQ', 'PQ'), ('SQ', 'SQ'), ('RQ', 'RQ'), ('PQ_st', 'PQ_st'),
             ('PQ_th', 'PQ_th')),
    events_subdir='validation',
    kind='validation',
    description='panoptic metrics',
    hint=('train with evaluation first: python -m official.vision.train '
          '--experiment=... --mode=train_and_eval --model_dir={model_dir}'),
    missing_fix=('train an experiment of gc_detection.model_garden.'
                 'panoptic_experiments, whose task writes PQ, SQ, RQ, PQ_st and '
                 'PQ_th; {hint}'),
    plot_label='PQ (%)')

METRIC_SETS = {metric_set.name: metric_set
               for metric_set in (DETECTION, SEGMENTATION, PANOPTIC)}

# The detection (column, tag) pairs, the name this module had for them before
# it had metric sets.
METRICS = DETECTION.metrics

Run = collections.namedtuple('Run', 'name model_dir')


class RunMetrics(collections.namedtuple('RunMetrics', 'name step values curve')):
  """One run at its latest evaluated step.

  step: that step; values: {column: fraction}; curve: [(step, fraction)] of
  the metric set's first metric (AP, mIoU), in step order.
  """
  __slots__ = ()

  @property
  def ap_curve(self):
    """The curve of a detection run (AP)."""
    return self.curve


class ReportError(user_errors.UserError):
  """A run that cannot be reported; the message says which and why."""


class UsageError(ReportError):
  """A malformed --run value."""


def parse_run(text):
  """Returns Run(name, model_dir) of a NAME=MODEL_DIR flag value."""
  name, separator, model_dir = text.partition('=')
  if not separator or not name.strip() or not model_dir:
    raise UsageError(f'--run={text}: expected NAME=MODEL_DIR, for example '
                     '--run=gc=models/frcnn_r50_gc')
  if '|' in name:
    raise UsageError(f'--run={text}: the name must not contain "|" (it would '
                     'break the Markdown table)')
  return Run(name.strip(), model_dir)


def parse_runs(texts):
  """Returns the Runs of the --run values; names must be unique."""
  runs = [parse_run(text) for text in texts]
  names = [run.name for run in runs]
  repeated = sorted({name for name in names if names.count(name) > 1})
  if repeated:
    raise UsageError(f'--run: the name {repeated[0]!r} is used more than once')
  return runs


def run_event_files(run, metric_set=DETECTION):
  """Returns the event files of the run's evaluation.

  They are those under MODEL_DIR/<metric_set.events_subdir> (recursively),
  or, when the run's directory has no such subdirectory, those directly in it.
  """
  model_dir = run.model_dir
  if not os.path.isdir(model_dir):
    raise ReportError(f'{model_dir}: no such directory (expected the model_dir '
                      f'of run {run.name!r})')
  events_dir = os.path.join(model_dir, metric_set.events_subdir)
  if os.path.isdir(events_dir):
    files = summary_events.event_files(events_dir)
  else:
    files = summary_events.event_files(model_dir, recursive=False)
  if not files:
    raise ReportError(f'{model_dir}: no {metric_set.kind} event files in '
                      f'{events_dir} for run {run.name!r}; '
                      + metric_set.hint.format(model_dir=model_dir))
  return files


def _single_evaluation(by_directory, run, metric_set):
  """The ({tag: {step: value}}, directory) of the one evaluation directory."""
  curve_tag = metric_set.curve_tag
  with_curve = sorted(directory for directory, tags in by_directory.items()
                      if tags.get(curve_tag))
  if not with_curve:
    hint = metric_set.hint.format(model_dir=run.model_dir)
    raise ReportError(
        f'{run.model_dir}: the {metric_set.kind} event files of run {run.name!r} '
        f'hold no {metric_set.description} ({curve_tag}); '
        + metric_set.missing_fix.format(hint=hint))
  if len(with_curve) > 1:
    raise ReportError(
        f'{run.model_dir}: {metric_set.description} of several evaluations in '
        f'{", ".join(with_curve)}; pass one of these directories as '
        f'--run={run.name}=DIR')
  return by_directory[with_curve[0]], with_curve[0]


def run_metrics(run, metric_set=DETECTION, files=None):
  """Returns the RunMetrics of one run at its latest evaluated step.

  files: the run's event files, if run_event_files has already found them.
  """
  if files is None:
    files = run_event_files(run, metric_set)
  by_directory = summary_events.read_scalars(
      files, [tag for _, tag in metric_set.metrics])
  tags, directory = _single_evaluation(by_directory, run, metric_set)
  curve = sorted(tags[metric_set.curve_tag].items())
  step = curve[-1][0]
  values = {}
  for column, tag in metric_set.metrics:
    if step not in tags.get(tag, {}):
      raise ReportError(f'{directory}: {tag!r} ({column}) is missing at step '
                        f'{step} of run {run.name!r}, where '
                        f'{metric_set.curve_tag!r} was written')
    values[column] = tags[tag][step]
  return RunMetrics(run.name, step, values, curve)


def format_value(value, metric_set=DETECTION):
  """'34.1' for 0.341; 'n/a' for COCO's -1 when the set has such values."""
  if metric_set.not_available_note and value < 0:
    return 'n/a'
  return f'{metric_set.scale * value:.1f}'


def metrics_table(results, metric_set=DETECTION):
  """Returns the Markdown table of RunMetrics, one row per run, and its note."""
  columns = metric_set.columns
  rows = [[result.name, result.step] +
          [format_value(result.values[column], metric_set) for column in columns]
          for result in results]
  text = markdown.markdown_table(['Run', 'Step'] + columns, rows,
                                 right_aligned=range(1, len(columns) + 2)) + '\n'
  if metric_set.not_available_note and any(
      value < 0 for result in results for value in result.values.values()):
    text += f'\n{metric_set.not_available_note}\n'
  return text


def write_markdown(path, text):
  atomic_files.write_text(path, text)


def write_curve_plot(path, results, metric_set=DETECTION):
  """Writes a PNG of the set's first metric against the step, one line per run."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top

  figure, axes = pyplot.subplots(figsize=(6, 4), dpi=100)
  for result in results:
    # COCO's -1 (no ground truth at all) is not an AP; leave it out.
    points = [(step, metric_set.scale * value) for step, value in result.curve
              if not (metric_set.not_available_note and value < 0)]
    axes.plot([step for step, _ in points], [value for _, value in points],
              marker='o', label=result.name)
  axes.set_xlabel('training step')
  axes.set_ylabel(metric_set.plot_label)
  axes.set_ylim(bottom=0)
  axes.set_title(f'{metric_set.curve_column} against training step')
  axes.grid(True, alpha=0.3)
  axes.legend()
  figure.tight_layout()
  try:
    atomic_files.write_atomically(
        path, lambda temporary: figure.savefig(temporary, format='png'))
  finally:
    pyplot.close(figure)


def write_ap_plot(path, results):
  """Writes a PNG of AP (percent) against the step of detection runs."""
  write_curve_plot(path, results, DETECTION)


def report(run_texts, markdown_out=None, plot_out=None, metric_set=DETECTION):
  """Returns the Markdown table of the runs; writes the optional outputs."""
  runs = parse_runs(run_texts)
  # Every run's directory is checked before any event file is read (and
  # TensorFlow imported): a mistyped last run fails at once.
  files = [run_event_files(run, metric_set) for run in runs]
  results = [run_metrics(run, metric_set, run_files)
             for run, run_files in zip(runs, files)]
  text = metrics_table(results, metric_set)
  if markdown_out:
    write_markdown(markdown_out, text)
  if plot_out:
    write_curve_plot(plot_out, results, metric_set)
  return text
