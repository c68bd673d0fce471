"""`tabulate_evaluator_metrics --metrics=segmentation|panoptic`: the paper's Table 4 and 5 columns.

Event files are written as Model Garden's trainer writes its validation
summaries (TF2 tensor summaries in MODEL_DIR/validation, fractions), with
values chosen here; the command runs in a subprocess.
"""
import os
import time

from PIL import Image
import pytest
import tensorflow as tf

from conftest import run_python
from gc_detection.reports import evaluator_metrics

COMMAND = ['-m', 'gc_detection.cli.tabulate_evaluator_metrics']
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def _write_validation(directory, points):
  """Writes [(step, {tag: value})] as official.vision.train writes validation."""
  writer = tf.summary.create_file_writer(str(directory))
  with writer.as_default():
    for step, values in points:
      for tag, value in values.items():
        tf.summary.scalar(tag, value, step=step)
  writer.close()


def _scores(miou, fwiou, macc, pacc):
  # The stock task's own summaries beside the paper's four: not in the table.
  return {'mIoU': miou, 'fwIoU': fwiou, 'mACC': macc, 'pACC': pacc,
          'mean_iou': miou - .01, 'iou/0': .9, 'iou/1': .1, 'validation_loss': 1.7}


def _two_runs(tmp_path):
  """'baseline' (latest step 2000 written before step 1000) and 'gc' (three
  evaluations, step 3000 evaluated twice: the later one counts)."""
  baseline, gc = tmp_path / 'baseline', tmp_path / 'gc'
  _write_validation(baseline / 'validation', [
      (2000, _scores(.3871, .5432, .4987, .7654)),
      (1000, _scores(.2011, .3022, .2533, .6044))])
  # Training summaries are not validation: never read.
  _write_validation(baseline / 'train', [(4000, _scores(.99, .99, .99, .99))])
  _write_validation(gc / 'validation', [
      (1000, _scores(.2233, .3344, .2855, .6166)),
      (2000, _scores(.3322, .4433, .3944, .7055)),
      (3000, _scores(.1, .1, .1, .1))])
  time.sleep(0.01)
  _write_validation(gc / 'validation', [(3000, _scores(.4018, .5561, .5129, .7782))])
  return baseline, gc


def test_segmentation_table_plot_and_errors(tmp_path):
  baseline, gc = _two_runs(tmp_path)
  markdown, plot = tmp_path / 'out' / 'table4.md', tmp_path / 'out' / 'miou.png'

  # Run order is the flags' order, not the names'.
  result = run_python(COMMAND + [f'--run=gc={gc}', f'--run=baseline={baseline}',
                                 '--metrics=segmentation', f'--markdown_out={markdown}',
                                 f'--plot_out={plot}'])
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.splitlines() == [
      '| Run | Step | mIoU | fwIoU | mACC | pACC |',
      '| --- | ---: | ---: | ---: | ---: | ---: |',
      '| gc | 3000 | 40.2 | 55.6 | 51.3 | 77.8 |',
      '| baseline | 2000 | 38.7 | 54.3 | 49.9 | 76.5 |']
  assert markdown.read_text() == result.stdout
  assert sorted(os.listdir(markdown.parent)) == ['miou.png', 'table4.md']  # no temporary files
  assert plot.read_bytes().startswith(PNG_SIGNATURE)
  with Image.open(plot) as image:
    image.verify()
    assert image.format == 'PNG' and image.size == (600, 400)

  # A run without validation events: one line naming the run and the directory;
  # nothing written, though the run before it is fine.
  never = tmp_path / 'never_validated'
  _write_validation(never / 'train', [(100, _scores(.5, .5, .5, .5))])
  failed_md = tmp_path / 'failed.md'
  result = run_python(COMMAND + [f'--run=baseline={baseline}', f'--run=gc={never}',
                                 '--metrics=segmentation', f'--markdown_out={failed_md}'])
  assert result.returncode == 1, result.stderr[-3000:]
  assert result.stdout == ''
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, result.stderr
  assert lines[0].startswith(
      f'tabulate_evaluator_metrics: error: ReportError: {never}: no validation event '
      f"files in {never / 'validation'} for run 'gc'; ")
  assert '--mode=train_and_eval' in lines[0]
  assert not failed_md.exists()

  result = run_python(COMMAND + [f'--run=gc={gc}', '--metrics=segmenation'])
  assert result.returncode == 2
  assert result.stderr.startswith(
      'tabulate_evaluator_metrics: error: flag --metrics=segmenation: ')
  assert 'detection|segmentation' in result.stderr


def test_stock_task_summaries_only_name_the_fix(tmp_path):
  # The stock semantic_segmentation task writes mean_iou, not the paper's four.
  stock = tmp_path / 'stock'
  _write_validation(stock / 'validation', [(1000, {'mean_iou': .3, 'validation_loss': 1.})])
  with pytest.raises(evaluator_metrics.ReportError) as error:
    evaluator_metrics.report([f'stock={stock}'], metric_set=evaluator_metrics.SEGMENTATION)
  assert str(error.value).startswith(f"{stock}: the validation event files of run 'stock' hold no "
                            'segmentation metrics (mIoU); train an experiment of '
                            'gc_detection.model_garden.segmentation_experiments')


def test_panoptic_table_has_the_columns_of_table_5(tmp_path):
  baseline, gc = tmp_path / 'baseline', tmp_path / 'gc'
  # The task's summaries: the five columns, the rest of its scores and COCO AP.
  extra = {'SQ_th': .8, 'RQ_th': .5, 'SQ_st': .7, 'RQ_st': .4, 'AP': .3, 'mask_AP': .28}
  _write_validation(baseline / 'validation', [
      (600, {'PQ': .394, 'SQ': .778, 'RQ': .483, 'PQ_st': .296, 'PQ_th': .459, **extra})])
  _write_validation(gc / 'validation', [
      (300, {'PQ': .1, 'SQ': .1, 'RQ': .1, 'PQ_st': .1, 'PQ_th': .1}),
      (600, {'PQ': .402, 'SQ': .781, 'RQ': .493, 'PQ_st': .310, 'PQ_th': .464, **extra})])
  result = run_python(COMMAND + [f'--run=R50-FPN={baseline}', f'--run=R50-FPN+GC={gc}',
                                 '--metrics=panoptic'])
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.splitlines() == [
      '| Run | Step | PQ | SQ | RQ | PQ_st | PQ_th |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
      '| R50-FPN | 600 | 39.4 | 77.8 | 48.3 | 29.6 | 45.9 |',
      '| R50-FPN+GC | 600 | 40.2 | 78.1 | 49.3 | 31.0 | 46.4 |']
