r"""Tabulates the metrics a stock evaluation wrote: one Markdown row per run.

--metrics=detection (the default): reads the TensorBoard event files of
`model_main_tf2 --checkpoint_dir=...` (or `scripts/train.sh
--checkpoint_dir=...`) under each MODEL_DIR/eval and prints AP, AP_s, AP_m,
AP_l, AP@.5, AP@.75, AR@100, AR_s@100, AR_m@100 and AR_l@100 like the paper's
Tables 1-2; optionally a PNG of AP against the step.

--metrics=segmentation: reads those of `python -m official.vision.train
--mode=train_and_eval` under each MODEL_DIR/validation and prints mIoU, fwIoU,
mACC and pACC like the paper's Table 4; optionally a PNG of mIoU against the
step.

--metrics=panoptic: the same trainer's PQ, SQ, RQ, PQ_st and PQ_th like the
paper's Table 5; optionally a PNG of PQ against the step.

Every value is at the run's latest evaluated step. It runs no model:
`evaluate_every_checkpoint` is the command that computes metrics itself.
gc_detection.reports.evaluator_metrics has the details.

  python -m gc_detection.cli.tabulate_evaluator_metrics \
      --run=baseline=models/frcnn_r50 --run=gc=models/frcnn_r50_gc \
      [--metrics=segmentation|panoptic] [--markdown_out=report.md] [--plot_out=ap.png]
"""
from absl import flags

from gc_detection.cli import program
from gc_detection.reports import evaluator_metrics

flags.DEFINE_multi_string(
    'run', None, 'NAME=MODEL_DIR of an evaluated run; repeat for more runs. The '
    'table has one row per run, in this order. Required.')
flags.DEFINE_enum(
    'metrics', evaluator_metrics.DETECTION.name, list(evaluator_metrics.METRIC_SETS),
    'detection: the COCO box metrics of the OD API evaluator (MODEL_DIR/eval); '
    'segmentation: mIoU, fwIoU, mACC, pACC of the Model Garden trainer '
    '(MODEL_DIR/validation); panoptic: PQ, SQ, RQ, PQ_st, PQ_th of the same.')
flags.DEFINE_string('markdown_out', None, 'Also write the Markdown table to this file.')
flags.DEFINE_string('plot_out', None, 'Write a PNG of the first metric (AP, mIoU, PQ) '
                    'against the training step here.')
FLAGS = flags.FLAGS


def main(argv):
  program.no_arguments(argv)
  program.require('run')
  try:
    evaluator_metrics.parse_runs(FLAGS.run)  # before TensorFlow is imported
  except evaluator_metrics.UsageError as error:
    raise program.UsageError(str(error)) from error
  print(evaluator_metrics.report(FLAGS.run, FLAGS.markdown_out, FLAGS.plot_out,
                                 evaluator_metrics.METRIC_SETS[FLAGS.metrics]), end='')


if __name__ == '__main__':
  program.run(main)
