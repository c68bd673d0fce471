"""The COCO flow: COCO-format data -> TFRecords -> train -> evaluate -> report.

COCO itself cannot be downloaded here, so a tiny generated dataset in COCO's
own format (JPEGs + instances JSON, gc_detection.data.coco_format) stands in
for it. End to end: `scripts/prepare_coco.sh` (the OD API's own
create_coco_tf_record.py), the stock trainer and the stock evaluator
(`model_main_tf2`, COCO metrics), then `gc_detection.cli.tabulate_evaluator_metrics`.
The report tool is also checked on its own against event files with known
values, and every tool's error messages are checked.
"""
import json
import os
import subprocess
import sys
import time

from object_detection.utils import config_util
from object_detection.utils import label_map_util
from PIL import Image
import pytest
import tensorflow as tf

from conftest import REPO_ROOT
from gc_detection.data import coco_format
from gc_detection.data import shapes
from gc_detection.od_api import coco_label_map
from gc_detection.reports import evaluator_metrics

PREPARE = os.path.join(REPO_ROOT, 'scripts', 'prepare_coco.sh')
GC_CONFIG = os.path.join(REPO_ROOT, 'pipeline_configs',
                         'faster_rcnn_resnet50_v1_gc_600x1024_coco.config')
COLUMNS = [column for column, _ in evaluator_metrics.METRICS]
# Generated images are 256 px: COCO's small (< 32^2), medium and large
# (> 96^2) boxes all occur, so AP_s, AP_m and AP_l are defined. The model sees
# them at 64 px.
IMAGE_SIZE, MODEL_SIZE = 256, 64


def _run(args, timeout=600):
  """Runs a command from the checkout root; returns the CompletedProcess."""
  return subprocess.run(args, capture_output=True, text=True, cwd=REPO_ROOT,
                        timeout=timeout, env=dict(os.environ))


def _ok(args, timeout=600):
  result = _run(args, timeout=timeout)
  assert result.returncode == 0, (
      f'{" ".join(args)} failed:\n{result.stderr[-4000:]}')
  return result


# --- the generated COCO-format dataset ------------------------------------


def test_coco_format_writes_the_shapes_boxes_as_coco_annotations(tmp_path):
  instances = coco_format.write(str(tmp_path / 'images'), str(tmp_path / 'a.json'),
                                seed=5, count=3, height=48, width=64)
  assert json.load(open(tmp_path / 'a.json')) == instances
  assert instances == coco_format.build(seed=5, count=3, height=48, width=64)[0]
  assert instances['categories'] == [
      {'id': 1, 'name': 'red_box', 'supercategory': 'shape'},
      {'id': 2, 'name': 'blue_box', 'supercategory': 'shape'}]
  examples = shapes.generate(seed=5, count=3, height=48, width=64)
  expected = [(image_id, [left, top, right - left, bottom - top], int(class_id))
              for image_id, example in enumerate(examples, start=1)
              for (top, left, bottom, right), class_id in zip(
                  example.boxes.tolist(), example.class_ids)]
  assert [(a['image_id'], a['bbox'], a['category_id'])
          for a in instances['annotations']] == expected
  for annotation in instances['annotations']:
    assert annotation['area'] == annotation['bbox'][2] * annotation['bbox'][3]
    assert annotation['iscrowd'] == 0
  for image in instances['images']:
    with Image.open(tmp_path / 'images' / image['file_name']) as jpeg:
      assert (jpeg.format, jpeg.size) == ('JPEG', (64, 48))


# --- the label map helper ---------------------------------------------------


def _write_json(path, value):
  with open(path, 'w') as out:
    json.dump(value, out)
  return str(path)


def _instances(categories, annotations=()):
  return {'images': [{'id': 1, 'file_name': 'a.jpg', 'height': 8, 'width': 8}],
          'annotations': list(annotations), 'categories': categories}


def test_label_map_keeps_the_json_ids_and_names_with_gaps(tmp_path):
  categories = [{'id': 1, 'name': 'person'}, {'id': 3, 'name': 'car'},
                {'id': 90, 'name': "tooth 'brush'"}]
  train = _write_json(tmp_path / 'train.json', _instances(categories))
  val = _write_json(tmp_path / 'val.json', _instances(categories[::-1]))
  output = str(tmp_path / 'label_map.pbtxt')
  coco_label_map.write_label_map([train, val], output)
  expected = {'person': 1, 'car': 3, "tooth 'brush'": 90}
  assert label_map_util.get_label_map_dict(output) == expected
  assert label_map_util.get_label_map_dict(output, use_display_name=True) == expected


@pytest.mark.parametrize('val_categories, val_annotations, message', [
    ([{'id': 1, 'name': 'person'}, {'id': 2, 'name': 'bus'}], [],
     'have different categories (first difference: id 2)'),
    ([{'id': 1, 'name': 'person'}, {'id': 2, 'name': 'car'}],
     [{'id': 7, 'image_id': 1, 'category_id': 5, 'bbox': [0, 0, 1, 1]}],
     'annotation 7 has category_id 5, which is not in "categories" (ids [1, 2])'),
    ([{'id': 0, 'name': 'person'}], [], '"id" must be an integer >= 1'),
    ([{'id': 1, 'name': 'person'}, {'id': 2, 'name': 'person'}], [],
     "name 'person' is used twice"),
])
def test_label_map_rejects_inconsistent_categories(tmp_path, val_categories,
                                                   val_annotations, message):
  train = _write_json(tmp_path / 'train.json', _instances(
      [{'id': 1, 'name': 'person'}, {'id': 2, 'name': 'car'}]))
  val = _write_json(tmp_path / 'val.json', _instances(val_categories,
                                                      val_annotations))
  with pytest.raises(coco_label_map.CocoFormatError, match='val.json') as error:
    coco_label_map.write_label_map([train, val], str(tmp_path / 'out.pbtxt'))
  assert message in str(error.value)
  assert not os.path.exists(tmp_path / 'out.pbtxt')


# --- scripts/prepare_coco.sh: argument errors ---------------------------------


def test_prepare_coco_explains_missing_and_wrong_arguments(tmp_path):
  result = _run(['bash', PREPARE])
  assert result.returncode == 2
  assert ('missing --output_dir --train_image_dir --train_annotations_file '
          '--val_image_dir --val_annotations_file') in result.stderr
  assert 'usage: scripts/prepare_coco.sh' in result.stderr

  result = _run(['bash', PREPARE, '--download'])
  assert result.returncode == 2 and 'missing --output_dir\n' in result.stderr

  result = _run(['bash', PREPARE, f'--output_dir={tmp_path}', '--train_dir=x'])
  assert result.returncode == 2
  assert 'unknown argument: --train_dir=x' in result.stderr

  (tmp_path / 'images').mkdir()
  annotations = _write_json(tmp_path / 'a.json', _instances([]))
  flags = [f'--output_dir={tmp_path / "out"}',
           f'--train_image_dir={tmp_path / "images"}',
           f'--train_annotations_file={annotations}',
           f'--val_image_dir={tmp_path / "no_such_dir"}',
           f'--val_annotations_file={annotations}']
  result = _run(['bash', PREPARE] + flags)
  assert result.returncode == 2
  assert f'--val_image_dir: no such directory: {tmp_path / "no_such_dir"}' in result.stderr
  flags[3] = f'--val_image_dir={tmp_path / "images"}'
  flags[4] = f'--val_annotations_file={tmp_path / "missing.json"}'
  result = _run(['bash', PREPARE] + flags)
  assert result.returncode == 2
  assert f'--val_annotations_file: no such file: {tmp_path / "missing.json"}' in result.stderr
  assert not os.path.exists(tmp_path / 'out')


def test_prepare_coco_stops_on_inconsistent_categories_and_leaves_nothing(tmp_path):
  coco_format.write(str(tmp_path / 'images'), str(tmp_path / 'train.json'),
                    seed=1, count=1, height=64, width=64)
  val = _write_json(tmp_path / 'val.json', _instances([{'id': 1, 'name': 'cat'}]))
  output_dir = tmp_path / 'out'
  result = _run(['bash', PREPARE, f'--output_dir={output_dir}',
                 f'--train_image_dir={tmp_path / "images"}',
                 f'--train_annotations_file={tmp_path / "train.json"}',
                 f'--val_image_dir={tmp_path / "images"}',
                 f'--val_annotations_file={val}'])
  assert result.returncode == 2
  assert f'coco_label_map: error: CocoFormatError: {val} and {tmp_path / "train.json"} have different categories' in result.stderr
  assert os.listdir(output_dir) == []  # the staging directory is gone too


# --- the report tool on event files with known values -----------------------

_TAG = dict(evaluator_metrics.METRICS)


def _write_events(directory, points, simple=False):
  """Writes [(step, {column: value})] as the stock evaluator does (TF2 tensor
  summaries) or, with simple=True, as TF1 simple_value summaries."""
  writer = tf.summary.create_file_writer(str(directory))
  with writer.as_default():
    for step, values in points:
      for column, value in values.items():
        if simple:
          summary = tf.compat.v1.Summary(value=[
              tf.compat.v1.Summary.Value(tag=_TAG[column], simple_value=value)])
          tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step=step)
        else:
          tf.summary.scalar(_TAG[column], value, step=step)
      tf.summary.scalar('Loss/total_loss', 1.5, step=step)
  writer.close()


def _row(*values):
  return dict(zip(COLUMNS, values))


BASELINE_200 = _row(.3012, .1456, .3321, .4087, .5123, .3178, .4211, .2234, .4567, .5789)
GC_300 = _row(.3412, .1621, .3702, -1.0, .5544, .3633, .4498, .2512, .4871, -1.0)


@pytest.fixture
def two_evaluated_runs(tmp_path):
  """Runs 'baseline' (tensor summaries in eval/, latest step 200 written
  before step 100) and 'gc' (simple_value summaries in eval/<name>/, step 300
  evaluated twice)."""
  baseline, gc = tmp_path / 'baseline', tmp_path / 'gc'
  _write_events(baseline / 'eval', [(200, BASELINE_200), (100, _row(*[.1] * 10))])
  _write_events(baseline / 'train', [(300, _row(*[.9] * 10))])  # not evaluation
  _write_events(gc / 'eval' / 'coco_val', [(300, _row(*[.2] * 10))], simple=True)
  time.sleep(0.01)
  _write_events(gc / 'eval' / 'coco_val', [(300, GC_300)], simple=True)
  return str(baseline), str(gc)


def test_report_table_has_the_latest_step_of_each_run(two_evaluated_runs, tmp_path):
  baseline, gc = two_evaluated_runs
  markdown = tmp_path / 'out' / 'report.md'
  text = evaluator_metrics.report([f'baseline={baseline}', f'gc={gc}'],
                               markdown_out=str(markdown))
  assert text.splitlines() == [
      '| Run | Step | AP | AP_s | AP_m | AP_l | AP@.5 | AP@.75 | AR@100 | '
      'AR_s@100 | AR_m@100 | AR_l@100 |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      '| baseline | 200 | 30.1 | 14.6 | 33.2 | 40.9 | 51.2 | 31.8 | 42.1 | 22.3 | 45.7 | 57.9 |',
      '| gc | 300 | 34.1 | 16.2 | 37.0 | n/a | 55.4 | 36.3 | 45.0 | 25.1 | 48.7 | n/a |',
      '',
      'n/a: COCO reports -1, the evaluation set has no ground truth of that size.']
  assert markdown.read_text() == text
  assert os.listdir(markdown.parent) == ['report.md']  # no temporary file left


def test_report_plots_ap_against_step(two_evaluated_runs, tmp_path):
  baseline, gc = two_evaluated_runs
  results = [evaluator_metrics.run_metrics(evaluator_metrics.parse_run(text))
             for text in (f'baseline={baseline}', f'gc={gc}')]
  assert [[step for step, _ in result.ap_curve] for result in results] == [
      [100, 200], [300]]
  assert [ap for _, ap in results[0].ap_curve] == pytest.approx([.1, .3012])
  plot = tmp_path / 'ap.png'
  evaluator_metrics.write_ap_plot(str(plot), results)
  with Image.open(plot) as image:
    image.verify()
    assert image.format == 'PNG' and image.size == (600, 400)


def test_report_errors_name_the_run_and_the_fix(tmp_path):
  empty = tmp_path / 'never_evaluated'
  (empty / 'train').mkdir(parents=True)
  with pytest.raises(evaluator_metrics.ReportError) as error:
    evaluator_metrics.report([f'gc={empty}'])
  assert str(error.value).startswith(f'{empty}: no evaluation event files in {empty}/eval')
  assert 'run the evaluator first' in str(error.value)
  assert f'--checkpoint_dir={empty}' in str(error.value)

  with pytest.raises(evaluator_metrics.ReportError, match='no such directory'):
    evaluator_metrics.report([f'gc={tmp_path / "missing"}'])

  losses_only = tmp_path / 'losses_only'
  _write_events(losses_only / 'eval', [(100, {})])
  with pytest.raises(evaluator_metrics.ReportError, match='coco_detection_metrics'):
    evaluator_metrics.report([f'gc={losses_only}'])

  partial = tmp_path / 'partial'
  _write_events(partial / 'eval', [(100, BASELINE_200), (200, {'AP': .5})])
  with pytest.raises(evaluator_metrics.ReportError) as error:
    evaluator_metrics.report([f'gc={partial}'])
  assert ("'DetectionBoxes_Precision/mAP (small)' (AP_s) is missing at step 200"
          in str(error.value))

  for bad in ('gc', '=models/x', 'gc=', 'a|b=models/x'):
    with pytest.raises(evaluator_metrics.UsageError, match=f'--run={bad}: '):
      evaluator_metrics.parse_runs([bad])
  with pytest.raises(evaluator_metrics.UsageError, match="'gc' is used more than once"):
    evaluator_metrics.parse_runs(['gc=a', 'gc=b'])


def test_report_cli_exit_codes(tmp_path):
  result = _run([sys.executable, '-m', 'gc_detection.cli.tabulate_evaluator_metrics',
                 '--run=models/frcnn_r50_gc'])
  assert result.returncode == 2
  assert 'tabulate_evaluator_metrics: error: --run=models/frcnn_r50_gc: expected NAME=MODEL_DIR' in result.stderr
  result = _run([sys.executable, '-m', 'gc_detection.cli.tabulate_evaluator_metrics',
                 f'--run=gc={tmp_path}', f'--markdown_out={tmp_path / "r.md"}'])
  assert result.returncode == 1
  assert f'{tmp_path}: no evaluation event files' in result.stderr
  assert not os.path.exists(tmp_path / 'r.md')


# --- end to end: prepare_coco.sh -> trainer -> evaluator -> report -----------


def _write_tiny_config(work_dir, data_dir):
  """The shipped Faster R-CNN R-50 + GC config, made tiny, on data_dir.

  train_config.num_steps is 100, the step of the trainer's one checkpoint
  block: the stock evaluator stops after a checkpoint only when its step
  equals num_steps.
  """
  text = open(GC_CONFIG).read().replace('initialization: BOTTLENECK',
                                        'initialization: GLOROT')
  path = os.path.join(work_dir, 'pipeline.config')
  with open(path, 'w') as out:
    out.write(text)
  configs = config_util.get_configs_from_pipeline_file(path)
  configs = config_util.merge_external_params_with_configs(configs, kwargs_dict={
      'batch_size': 2, 'num_classes': 2, 'train_steps': 100})
  frcnn = configs['model'].faster_rcnn
  resizer = frcnn.image_resizer.keep_aspect_ratio_resizer
  resizer.min_dimension = resizer.max_dimension = MODEL_SIZE
  # Few, small second-stage crops: the box classifier (ResNet's conv5 on every
  # crop) is most of a training step's time.
  frcnn.first_stage_max_proposals = 8
  frcnn.second_stage_batch_size = 4
  frcnn.initial_crop_size = 6
  post = frcnn.second_stage_post_processing.batch_non_max_suppression
  post.max_total_detections = post.max_detections_per_class = 20
  cosine = configs['train_config'].optimizer.adam_optimizer.learning_rate \
      .cosine_decay_learning_rate
  cosine.total_steps, cosine.warmup_steps = 100, 10
  configs['train_config'].ClearField('fine_tune_checkpoint')
  configs['train_config'].ClearField('data_augmentation_options')
  label_map = os.path.join(data_dir, 'label_map.pbtxt')
  for reader, pattern in (
      (configs['train_input_config'], 'train2017-?????-of-00100.tfrecord'),
      (configs['eval_input_configs'][0], 'val2017-?????-of-00050.tfrecord')):
    reader.label_map_path = label_map
    reader.tf_record_input_reader.input_path[:] = [os.path.join(data_dir, pattern)]
  config_util.save_pipeline_config(
      config_util.create_pipeline_proto_from_configs(configs), work_dir)
  assert 'PATH_TO_BE_CONFIGURED' not in open(path).read()
  return path


def _records(pattern):
  return [tf.train.Example.FromString(record.numpy())
          for record in tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(pattern)))]


def _prepare(work_dir):
  """Generated COCO-format train/val -> scripts/prepare_coco.sh; returns the
  output directory and the val instances."""
  raw = os.path.join(work_dir, 'raw')
  coco_format.write(os.path.join(raw, 'train2017'),
                    os.path.join(raw, 'annotations', 'instances_train2017.json'),
                    seed=1, count=8, height=IMAGE_SIZE, width=IMAGE_SIZE)
  # Seed 11 has small, medium and large boxes, so every column is defined.
  val = coco_format.write(os.path.join(raw, 'val2017'),
                          os.path.join(raw, 'annotations', 'instances_val2017.json'),
                          seed=11, count=4, height=IMAGE_SIZE, width=IMAGE_SIZE)
  areas = [annotation['area'] for annotation in val['annotations']]
  assert min(areas) < 32 ** 2 < 96 ** 2 < max(areas)
  data_dir = os.path.join(work_dir, 'coco')
  _ok(['bash', PREPARE, f'--output_dir={data_dir}',
       f'--train_image_dir={raw}/train2017',
       f'--train_annotations_file={raw}/annotations/instances_train2017.json',
       f'--val_image_dir={raw}/val2017',
       f'--val_annotations_file={raw}/annotations/instances_val2017.json'])
  return data_dir, val


def _check_prepared(data_dir, val):
  names = sorted(os.listdir(data_dir))
  assert names == sorted(
      ['label_map.pbtxt'] + [f'train2017-{i:05d}-of-00100.tfrecord' for i in range(100)]
      + [f'val2017-{i:05d}-of-00050.tfrecord' for i in range(50)])
  assert label_map_util.get_label_map_dict(
      os.path.join(data_dir, 'label_map.pbtxt')) == {'red_box': 1, 'blue_box': 2}
  assert len(_records(os.path.join(data_dir, 'train2017-*'))) == 8
  records = _records(os.path.join(data_dir, 'val2017-*'))
  assert sorted(int(r.features.feature['image/source_id'].bytes_list.value[0])
                for r in records) == [1, 2, 3, 4]
  first = next(r.features.feature for r in records
               if r.features.feature['image/source_id'].bytes_list.value[0] == b'1')
  expected = [a for a in val['annotations'] if a['image_id'] == 1]
  names = {1: b'red_box', 2: b'blue_box'}
  assert list(first['image/object/class/text'].bytes_list.value) == [
      names[a['category_id']] for a in expected]
  assert list(first['image/object/area'].float_list.value) == [a['area'] for a in expected]
  assert list(first['image/object/bbox/xmin'].float_list.value) == pytest.approx(
      [a['bbox'][0] / IMAGE_SIZE for a in expected])


def _evaluate(config, model_dir):
  """The stock evaluator on model_dir's checkpoint; returns its stderr.

  With train_config.num_steps equal to the checkpoint's step it exits right
  after the evaluation; otherwise it would sleep until 300 s after the start of
  that evaluation (wait_interval, fixed in model_main_tf2) and then wait
  --eval_timeout seconds for a new checkpoint.
  """
  started = time.time()
  try:
    result = _ok([sys.executable, '-m', 'object_detection.model_main_tf2',
                  f'--pipeline_config_path={config}', f'--model_dir={model_dir}',
                  f'--checkpoint_dir={model_dir}', '--eval_timeout=30'],
                 timeout=280)
  except subprocess.TimeoutExpired:
    pytest.fail('the evaluator did not exit after evaluating the step-100 '
                'checkpoint (is train_config.num_steps 100?)')
  assert 'Exiting evaluation at step 100' in result.stderr, (
      f'evaluator ran {time.time() - started:.0f}s:\n{result.stderr[-3000:]}')
  return result.stderr


def _table_cells(text):
  """{column: cell} of each row of a tabulate_evaluator_metrics table, keyed by run name."""
  lines = [line for line in text.splitlines() if line.startswith('|')]
  header = [cell.strip() for cell in lines[0].strip('|').split('|')]
  return {cells[0]: dict(zip(header[1:], cells[1:]))
          for line in lines[2:]
          for cells in [[cell.strip() for cell in line.strip('|').split('|')]]}


def test_coco_flow_prepare_train_evaluate_report(tmp_path):
  work_dir = str(tmp_path)
  data_dir, val = _prepare(work_dir)
  _check_prepared(data_dir, val)

  config = _write_tiny_config(work_dir, data_dir)
  model_dir = os.path.join(work_dir, 'model')
  _ok([sys.executable, '-m', 'object_detection.model_main_tf2',
       f'--pipeline_config_path={config}', f'--model_dir={model_dir}',
       '--num_train_steps=100', '--checkpoint_every_n=100'], timeout=900)
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(model_dir))
  assert reader.get_tensor('step/.ATTRIBUTES/VARIABLE_VALUE') == 100

  evaluator_log = _evaluate(config, model_dir)

  markdown, plot = tmp_path / 'report.md', tmp_path / 'ap.png'
  result = _ok([sys.executable, '-m', 'gc_detection.cli.tabulate_evaluator_metrics',
                f'--run=frcnn_r50_gc={model_dir}', f'--markdown_out={markdown}',
                f'--plot_out={plot}'])
  assert markdown.read_text() == result.stdout
  rows = _table_cells(result.stdout)
  assert list(rows) == ['frcnn_r50_gc']
  row = rows['frcnn_r50_gc']
  assert list(row) == ['Step'] + COLUMNS and row['Step'] == '100'
  for column, tag in evaluator_metrics.METRICS:
    # The evaluator logs every metric as "+ TAG: 0.123456".
    logged = float(evaluator_log.split(f'+ {tag}: ')[1].split()[0])
    assert row[column] != 'n/a' and 0 <= float(row[column]) <= 100, column
    # The report reads the float32 event value, the log prints 6 decimals:
    # a value on a rounding boundary (0.0125) may round either way, so the
    # printed 0.1 percent must be within half its unit of the logged value.
    assert abs(float(row[column]) - 100 * logged) <= 0.05 + 1e-6, (
        column, row[column], logged)
  with Image.open(plot) as image:
    image.verify()
    assert image.format == 'PNG'
