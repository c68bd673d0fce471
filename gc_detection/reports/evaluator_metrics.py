r"""Tabulates the COCO box metrics the stock evaluator wrote, run beside run, like the paper.

The stock evaluator (`model_main_tf2 --checkpoint_dir=...`, or
`scripts/train.sh --checkpoint_dir=...`) writes its COCO metrics only as
TensorBoard summaries under MODEL_DIR/eval. Comparing a baseline with its +GC
model the way Tables 1-2 of the paper do means digging the same ten numbers
out of several event files; this tool does that: one Markdown row per run with
AP, AP_s, AP_m, AP_l, AP@.5, AP@.75, AR@100, AR_s@100, AR_m@100, AR_l@100 in
percent, taken at the run's latest evaluated step (shown in the table), and
optionally a PNG of AP against the step for every run. It runs no model
(gc_detection.od_api.checkpoint_evaluation is the one that does).

Usage:
  python -m gc_detection.cli.tabulate_evaluator_metrics \
      --run=baseline=models/frcnn_r50 --run=gc=models/frcnn_r50_gc \
      [--markdown_out=report.md] [--plot_out=ap.png]

Events are read from MODEL_DIR/eval and its subdirectories (a directory that
holds event files itself also works, e.g. MODEL_DIR/eval/NAME when the eval
input has a name). The evaluator writes TF2 tensor summaries; plain
`simple_value` summaries are read as well. COCO reports -1 when the evaluation
set has no ground truth of a size (for example no large objects); the table
shows that as n/a.
"""
import collections
import glob
import os

from gc_detection import atomic_files
from gc_detection import user_errors
from gc_detection.reports import markdown

# (column, summary tag written by the OD API's CocoDetectionEvaluator), in the
# order of the paper's tables.
METRICS = (
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
)
AP_TAG = METRICS[0][1]
_TAGS = frozenset(tag for _, tag in METRICS)

Run = collections.namedtuple('Run', 'name model_dir')
# step: the latest evaluated step; values: {column: fraction};
# ap_curve: [(step, AP fraction)] in step order.
RunMetrics = collections.namedtuple('RunMetrics', 'name step values ap_curve')


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


def _evaluator_hint(model_dir):
  return (f'run the evaluator first: scripts/train.sh --pipeline_config_path=... '
          f'--model_dir={model_dir} --checkpoint_dir={model_dir}')


def eval_event_files(model_dir):
  """Returns the event files of model_dir's evaluation.

  They are those under MODEL_DIR/eval (recursively), or, when model_dir has no
  eval/ subdirectory, those directly in model_dir.
  """
  if not os.path.isdir(model_dir):
    raise ReportError(f'{model_dir}: no such directory (expected a model_dir)')
  eval_dir = os.path.join(model_dir, 'eval')
  if os.path.isdir(eval_dir):
    pattern = os.path.join(eval_dir, '**', 'events.out.tfevents.*')
    files = glob.glob(pattern, recursive=True)
  else:
    files = glob.glob(os.path.join(model_dir, 'events.out.tfevents.*'))
  if not files:
    raise ReportError(f'{model_dir}: no evaluation event files in {eval_dir}; '
                      + _evaluator_hint(model_dir))
  return sorted(files)


def _scalar(value, tf):
  """The float of a summary value (simple_value or scalar tensor), or None."""
  kind = value.WhichOneof('value')
  if kind == 'simple_value':
    return float(value.simple_value)
  if kind == 'tensor':
    array = tf.make_ndarray(value.tensor)
    if array.size == 1 and array.dtype.kind in 'fiu':
      return float(array.reshape(()))
  return None


def _events(path, tf):
  """Yields the Event protos of one event file.

  What tf.compat.v1.train.summary_iterator does, without its deprecation
  notice. A file the evaluator is still writing may end in a partial record;
  reading stops there.
  """
  try:
    for record in tf.data.TFRecordDataset(path):
      yield tf.compat.v1.Event.FromString(record.numpy())
  except tf.errors.DataLossError:
    return


def read_metrics(files):
  """Returns {directory: {tag: {step: value}}} of the METRICS tags in files.

  A step evaluated more than once (the evaluator run again on the same
  checkpoints) keeps the value with the latest wall time.
  """
  # Imported here, not at the top: a malformed --run fails without the
  # seconds TensorFlow takes to import.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  timed = collections.defaultdict(lambda: collections.defaultdict(dict))
  for path in files:
    for event in _events(path, tf):
      for value in event.summary.value:
        number = _scalar(value, tf) if value.tag in _TAGS else None
        if number is None:
          continue
        steps = timed[os.path.dirname(path)][value.tag]
        if event.step not in steps or steps[event.step][0] <= event.wall_time:
          steps[event.step] = (event.wall_time, number)
  return {directory: {tag: {step: number for step, (_, number) in steps.items()}
                      for tag, steps in tags.items()}
          for directory, tags in timed.items()}


def _single_evaluation(by_directory, model_dir):
  """The {tag: {step: value}} of the one directory holding COCO metrics."""
  with_ap = sorted(directory for directory, tags in by_directory.items()
                   if tags.get(AP_TAG))
  if not with_ap:
    raise ReportError(
        f'{model_dir}: the evaluation event files hold no COCO detection '
        f'metrics ({AP_TAG}); evaluate with metrics_set: '
        f'"coco_detection_metrics" ({_evaluator_hint(model_dir)})')
  if len(with_ap) > 1:
    raise ReportError(
        f'{model_dir}: COCO metrics of several evaluations in {", ".join(with_ap)};'
        ' pass one of these directories as NAME=DIR')
  return by_directory[with_ap[0]], with_ap[0]


def run_metrics(run):
  """Returns the RunMetrics of one run at its latest evaluated step."""
  tags, directory = _single_evaluation(
      read_metrics(eval_event_files(run.model_dir)), run.model_dir)
  ap_curve = sorted(tags[AP_TAG].items())
  step = ap_curve[-1][0]
  values = {}
  for column, tag in METRICS:
    if step not in tags.get(tag, {}):
      raise ReportError(f'{directory}: {tag!r} ({column}) is missing at step '
                        f'{step}, where {AP_TAG!r} was written')
    values[column] = tags[tag][step]
  return RunMetrics(run.name, step, values, ap_curve)


def format_percent(value):
  """'34.1' for 0.341; 'n/a' for COCO's -1 (no ground truth of that kind)."""
  return 'n/a' if value < 0 else f'{100 * value:.1f}'


def metrics_table(results):
  """Returns the Markdown table of RunMetrics, one row per run, and its note."""
  columns = [column for column, _ in METRICS]
  rows = [[result.name, result.step] +
          [format_percent(result.values[column]) for column in columns]
          for result in results]
  text = markdown.markdown_table(['Run', 'Step'] + columns, rows,
                                 right_aligned=range(1, len(columns) + 2)) + '\n'
  if any(value < 0 for result in results for value in result.values.values()):
    text += ('\nn/a: COCO reports -1, the evaluation set has no ground truth '
             'of that size.\n')
  return text


def write_markdown(path, text):
  atomic_files.write_text(path, text)


def write_ap_plot(path, results):
  """Writes a PNG of AP (percent) against the step, one line per run."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top

  figure, axes = pyplot.subplots(figsize=(6, 4), dpi=100)
  for result in results:
    # COCO's -1 (no ground truth at all) is not an AP; leave it out.
    points = [(step, 100 * value) for step, value in result.ap_curve if value >= 0]
    steps = [step for step, _ in points]
    aps = [ap for _, ap in points]
    axes.plot(steps, aps, marker='o', label=result.name)
  axes.set_xlabel('training step')
  axes.set_ylabel('AP (%), COCO box')
  axes.set_ylim(bottom=0)
  axes.set_title('AP against training step')
  axes.grid(True, alpha=0.3)
  axes.legend()
  figure.tight_layout()
  try:
    atomic_files.write_atomically(
        path, lambda temporary: figure.savefig(temporary, format='png'))
  finally:
    pyplot.close(figure)


def report(run_texts, markdown_out=None, plot_out=None):
  """Returns the Markdown table of the runs; writes the optional outputs."""
  results = [run_metrics(run) for run in parse_runs(run_texts)]
  text = metrics_table(results)
  if markdown_out:
    write_markdown(markdown_out, text)
  if plot_out:
    write_ap_plot(plot_out, results)
  return text

