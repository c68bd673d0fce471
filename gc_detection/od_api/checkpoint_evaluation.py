r"""COCO metrics (pycocotools) of every checkpoint of a training run, computed here.

Builds the model of a pipeline.config once (the OD API's model_builder, with
gc_detection registered), restores each checkpoint the stock trainer wrote
into model_dir in turn, runs the model's own preprocess -> predict ->
postprocess on the held-out images of a COCO-format ground-truth file and
scores the detections with pycocotools' COCOeval. The stock evaluator
(model_main_tf2 --checkpoint_dir) only follows the newest checkpoint; this
scores them all, which is what an AP-against-step curve needs.

Writes a JSON list, one entry per checkpoint: step, AP, AP50, AP75, and AP per
class (COCO's averaging: IoU 0.50:0.95, all areas, up to 100 detections).

(gc_detection.reports.evaluator_metrics, by contrast, computes nothing: it
tabulates the metrics the stock evaluator wrote into TensorBoard event files.)

Usage:
  python -m gc_detection.cli.evaluate_every_checkpoint \
      --pipeline_config_path=pipeline_configs/far_cue/faster_rcnn_resnet50_gc_far_cue.config \
      --model_dir=models/far_cue_gc --coco_annotations_file=data/far_cue/val_coco.json \
      --image_dir=data/far_cue/val_images --output=models/far_cue_gc/coco_metrics.json
"""
import contextlib
import io
import json
import os

import numpy as np

from gc_detection import user_errors

BATCH = 8


class EvaluationInputError(FileNotFoundError, user_errors.UserError):
  """A model_dir without checkpoints, or an image the ground truth names is missing."""


def checkpoint_paths(model_dir):
  """The paths of model_dir's listed checkpoints, oldest first."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  state = tf.train.get_checkpoint_state(model_dir)
  if state is None:
    raise EvaluationInputError(f'--model_dir: {model_dir!r} has no checkpoint state file')
  return list(state.all_model_checkpoint_paths)


def _load_images(ground_truth, image_dir):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  images = []
  for entry in ground_truth['images']:
    path = os.path.join(image_dir, entry['file_name'])
    if not os.path.exists(path):
      raise EvaluationInputError(f'--image_dir: {path} (image {entry["id"]} of the ground '
                              'truth) does not exist')
    with Image.open(path) as image:
      images.append(np.asarray(image.convert('RGB')))
  return images


class CheckpointEvaluator:
  """One model, restored from checkpoint after checkpoint, scored on one image set."""

  def __init__(self, pipeline_config_path, coco_annotations_file, image_dir):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from object_detection.builders import model_builder  # pylint: disable=g-import-not-at-top
    from object_detection.utils import config_util  # pylint: disable=g-import-not-at-top

    configs = config_util.get_configs_from_pipeline_file(pipeline_config_path)
    self.model = model_builder.build(configs['model'], is_training=False)
    if not os.path.isfile(coco_annotations_file):
      raise EvaluationInputError(
          f'--coco_annotations_file: no such file: {coco_annotations_file}')
    with open(coco_annotations_file) as annotations:
      self.ground_truth = json.load(annotations)
    self.images = _load_images(self.ground_truth, image_dir)
    shapes = {image.shape for image in self.images}
    self._same_shape = len(shapes) == 1

    @tf.function
    def detect(images):
      preprocessed, true_shapes = self.model.preprocess(tf.cast(images, tf.float32))
      return self.model.postprocess(self.model.predict(preprocessed, true_shapes),
                                    true_shapes)
    self._detect = detect
    self._checkpoint = tf.train.Checkpoint(model=self.model)

  def detections(self):
    """COCO result dicts of the current weights on every image."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    batch = BATCH if self._same_shape else 1
    results = []
    for start in range(0, len(self.images), batch):
      images = np.stack(self.images[start:start + batch])
      outputs = {k: v.numpy() for k, v in self._detect(tf.constant(images)).items()}
      for offset in range(len(images)):
        entry = self.ground_truth['images'][start + offset]
        height, width = images.shape[1:3]
        count = int(outputs['num_detections'][offset])
        for box, score, label in zip(outputs['detection_boxes'][offset][:count],
                                     outputs['detection_scores'][offset][:count],
                                     outputs['detection_classes'][offset][:count]):
          ymin, xmin, ymax, xmax = (float(v) for v in box * [height, width, height, width])
          results.append({'image_id': entry['id'],
                          'category_id': int(label) + 1,  # postprocess is 0-based
                          'bbox': [xmin, ymin, xmax - xmin, ymax - ymin],
                          'score': float(score)})
    return results

  def evaluate(self, checkpoint_path):
    """Restores `checkpoint_path` and returns its metrics dict."""
    from gc_detection.od_api.training import final_checkpoint  # pylint: disable=g-import-not-at-top
    self._checkpoint.restore(checkpoint_path).expect_partial()
    step = final_checkpoint.checkpoint_step(checkpoint_path)
    metrics = coco_metrics(self.ground_truth, self.detections())
    metrics.update(step=step, checkpoint=checkpoint_path)
    return metrics


def coco_metrics(ground_truth, detections):
  """COCO metrics of detections (COCO result dicts) by pycocotools, in %.

  Returns:
    {'AP', 'AP50', 'AP75', 'per_class': {name: AP}, 'AP_class_agnostic' (AP
    with classes ignored: how well objects are found), 'class_accuracy'
    (see class_accuracy)}.
  """
  from pycocotools.coco import COCO  # pylint: disable=g-import-not-at-top
  from pycocotools.cocoeval import COCOeval  # pylint: disable=g-import-not-at-top

  names = {category['id']: category['name'] for category in ground_truth['categories']}
  if not detections:
    return {'AP': 0.0, 'AP50': 0.0, 'AP75': 0.0,
            'per_class': {name: 0.0 for name in names.values()},
            'AP_class_agnostic': 0.0, 'class_accuracy': None}
  with contextlib.redirect_stdout(io.StringIO()):  # COCO's own prints
    truth = COCO()
    truth.dataset = ground_truth
    truth.createIndex()
    scored = truth.loadRes(detections)
    evaluation = COCOeval(truth, scored, 'bbox')
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
  # precision: [IoU thresholds, recall points, classes, areas, max detections];
  # area 0 = all, max detections index 2 = 100; -1 marks "no ground truth".
  precision = evaluation.eval['precision'][:, :, :, 0, 2]
  per_class = {}
  for index, category_id in enumerate(evaluation.params.catIds):
    values = precision[:, :, index]
    values = values[values > -1]
    per_class[names[category_id]] = 100 * float(values.mean()) if values.size else 0.0
  stats = evaluation.stats
  with contextlib.redirect_stdout(io.StringIO()):
    agnostic = COCOeval(truth, scored, 'bbox')
    agnostic.params.useCats = 0  # any class may match any object
    agnostic.evaluate()
    agnostic.accumulate()
    agnostic.summarize()
  return {'AP': 100 * float(stats[0]), 'AP50': 100 * float(stats[1]),
          'AP75': 100 * float(stats[2]), 'per_class': per_class,
          'AP_class_agnostic': 100 * float(agnostic.stats[0]),
          'class_accuracy': class_accuracy(ground_truth, detections)}


def _iou(box, boxes):
  """IoU of one [x, y, w, h] box with (N, 4) boxes of the same form."""
  x0 = np.maximum(box[0], boxes[:, 0])
  y0 = np.maximum(box[1], boxes[:, 1])
  x1 = np.minimum(box[0] + box[2], boxes[:, 0] + boxes[:, 2])
  y1 = np.minimum(box[1] + box[3], boxes[:, 1] + boxes[:, 3])
  intersection = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
  return intersection / (box[2] * box[3] + boxes[:, 2] * boxes[:, 3] - intersection)


def class_accuracy(ground_truth, detections, iou_threshold=0.5):
  """% of found objects whose best detection has the right class.

  For each ground-truth object, the highest-scoring detection of any class
  with IoU >= iou_threshold is its best detection; objects without one are
  left out (that is localisation, not classification). A detector that cannot
  tell the classes apart scores 100 / number of classes.
  Returns None when no object was found.
  """
  by_image = {}
  for detection in detections:
    by_image.setdefault(detection['image_id'], []).append(detection)
  found = right = 0
  for annotation in ground_truth['annotations']:
    candidates = by_image.get(annotation['image_id'], [])
    if not candidates:
      continue
    overlaps = _iou(np.array(annotation['bbox'], float),
                    np.array([d['bbox'] for d in candidates], float))
    scores = np.array([d['score'] for d in candidates])
    scores[overlaps < iou_threshold] = -np.inf
    best = int(np.argmax(scores))
    if np.isfinite(scores[best]):
      found += 1
      right += candidates[best]['category_id'] == annotation['category_id']
  return 100 * right / found if found else None


def evaluate_run(pipeline_config_path, model_dir, coco_annotations_file, image_dir,
                 latest_only=False, log=None):
  """Metrics of each listed checkpoint of model_dir (or the newest), oldest first."""
  paths = checkpoint_paths(model_dir)  # before the model is built
  evaluator = CheckpointEvaluator(pipeline_config_path, coco_annotations_file, image_dir)
  if latest_only:
    paths = paths[-1:]
  results = []
  for path in paths:
    results.append(evaluator.evaluate(path))
    if log:
      accuracy = results[-1]['class_accuracy']
      log(f'{os.path.basename(path)} (step {results[-1]["step"]}): AP '
          f'{results[-1]["AP"]:.1f}, AP50 {results[-1]["AP50"]:.1f}, class-agnostic AP '
          f'{results[-1]["AP_class_agnostic"]:.1f}, class accuracy '
          + (f'{accuracy:.0f}%' if accuracy is not None else '-'))
  return results

