"""The far-cue benchmark's scoring and (in a tiny form) its whole code path.

The scores are checked on detections whose right answer is known by
construction (the ground truth itself, with the classes kept or rotated);
the tiny benchmark only has to show that both models train with the stock
trainer and are scored, not who wins (benchmarks/far_cue.py does that).
"""
import copy
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from conftest import REPO_ROOT
from gc_detection.od_api import checkpoint_evaluation
from gc_detection.data import far_cue_dataset


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
  return far_cue_dataset.write_dataset(str(tmp_path_factory.mktemp('far_cue')),
                                            num_train=2, num_val=12, seed=5,
                                            show_progress=False)


def _ground_truth(dataset):
  with open(dataset['val_coco']) as truth:
    return json.load(truth)


def _as_detections(truth, rotate_classes=False, score=1.0):
  return [{'image_id': a['image_id'], 'bbox': list(a['bbox']), 'score': score,
           'category_id': a['category_id'] % 3 + 1 if rotate_classes else a['category_id']}
          for a in truth['annotations']]


def test_the_ground_truth_scores_100(dataset):
  truth = _ground_truth(dataset)
  metrics = checkpoint_evaluation.coco_metrics(truth, _as_detections(truth))
  assert metrics['AP'] == pytest.approx(100) and metrics['AP50'] == pytest.approx(100)
  assert metrics['AP_class_agnostic'] == pytest.approx(100)
  assert metrics['class_accuracy'] == 100
  assert all(ap == pytest.approx(100) for ap in metrics['per_class'].values())


def test_right_boxes_with_wrong_classes_score_0_but_are_found(dataset):
  truth = _ground_truth(dataset)
  metrics = checkpoint_evaluation.coco_metrics(truth, _as_detections(truth, True))
  assert metrics['AP'] == 0 and metrics['class_accuracy'] == 0
  assert metrics['AP_class_agnostic'] == pytest.approx(100)


def test_class_accuracy_takes_the_best_detection_of_each_object(dataset):
  truth = _ground_truth(dataset)
  right = _as_detections(truth, score=0.9)
  wrong = _as_detections(truth, rotate_classes=True, score=0.5)
  for index, detection in enumerate(wrong):
    if index % 2:  # every other object: the wrong class scores higher
      detection['score'] = 0.95
  accuracy = checkpoint_evaluation.class_accuracy(truth, right + wrong)
  objects = len(truth['annotations'])
  assert accuracy == pytest.approx(100 * (objects - objects // 2) / objects)
  # A detection that misses the box (IoU < 0.5) is not the object's.
  shifted = copy.deepcopy(wrong)
  for detection in shifted:
    detection['bbox'][0] += detection['bbox'][2]
  assert checkpoint_evaluation.class_accuracy(truth, right + shifted) == 100
  assert checkpoint_evaluation.class_accuracy(truth, shifted) is None


def test_the_evaluator_converts_model_outputs_to_coco_pixels(dataset):
  """The model's own output format (normalised [ymin, xmin, ymax, xmax],
  0-based classes, padded to a fixed count) is what detections() reads."""
  config = os.path.join(REPO_ROOT, 'pipeline_configs', 'far_cue',
                        'faster_rcnn_resnet50_gc_far_cue.config')
  evaluator = checkpoint_evaluation.CheckpointEvaluator(config, dataset['val_coco'],
                                                       dataset['val_images'])
  truth = evaluator.ground_truth
  height = width = 256
  by_image = {}
  for annotation in truth['annotations']:
    x, y, w, h = annotation['bbox']
    by_image.setdefault(annotation['image_id'], []).append(
        ([y / height, x / width, (y + h) / height, (x + w) / width],
         annotation['category_id'] - 1))
  image_ids = [entry['id'] for entry in truth['images']]

  def fake_detect(images):
    count = images.shape[0]
    start = fake_detect.offset
    fake_detect.offset += count
    boxes = np.zeros((count, 5, 4), np.float32)
    classes = np.zeros((count, 5), np.float32)
    scores = np.zeros((count, 5), np.float32)
    numbers = np.zeros(count, np.float32)
    for row, image_id in enumerate(image_ids[start:start + count]):
      for column, (box, label) in enumerate(by_image[image_id]):
        boxes[row, column], classes[row, column], scores[row, column] = box, label, 0.9
      numbers[row] = len(by_image[image_id])
    return {'detection_boxes': FakeTensor(boxes), 'detection_classes': FakeTensor(classes),
            'detection_scores': FakeTensor(scores), 'num_detections': FakeTensor(numbers)}
  fake_detect.offset = 0
  evaluator._detect = fake_detect  # pylint: disable=protected-access
  metrics = checkpoint_evaluation.coco_metrics(truth, evaluator.detections())
  assert metrics['AP'] == pytest.approx(100, abs=0.5)


class FakeTensor:
  def __init__(self, value):
    self._value = value

  def numpy(self):
    return self._value


def test_quick_benchmark_trains_and_scores_both_models(tmp_path):
  markdown = tmp_path / 'BENCHMARKS.md'
  plot = tmp_path / 'plot.png'
  result = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, 'benchmarks', 'far_cue.py'), '--quick',
       '--nostock_evaluator', f'--work_dir={tmp_path / "work"}', f'--markdown={markdown}',
       f'--plot={plot}'], capture_output=True, text=True, cwd=REPO_ROOT, timeout=1200)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(tmp_path / 'work' / 'results.json') as results_file:
    results = json.load(results_file)
  assert [(run['model'], run['seed']) for run in results] == [('stock', '0'), ('gc', '0')]
  for run in results:
    assert [m['step'] for m in run['metrics']] == [0, 100], run['model']
    assert all(0 <= m['AP'] <= 100 for m in run['metrics'])
  text = markdown.read_text()
  assert '<!-- begin: far_cue -->' in text
  assert 'Faster R-CNN R-50 (stock)' in text and 'Faster R-CNN R-50 + GC' in text
  assert 'GC - stock, mean AP over seeds' in text
  with Image.open(plot) as picture:
    assert picture.format == 'PNG' and picture.size[0] > 300
