r"""COCO metrics (pycocotools) of every checkpoint of a training run.

Builds the model of a pipeline.config once (the OD API's model_builder, with
gc_detection registered), restores each checkpoint the stock trainer wrote
into model_dir in turn, runs the model's own preprocess -> predict ->
postprocess on the held-out images of a COCO-format ground-truth file and
scores the detections with pycocotools' COCOeval. The stock evaluator
(model_main_tf2 --checkpoint_dir) only follows the newest checkpoint; this
scores them all, which is what an AP-against-step curve needs.

Writes a JSON list, one entry per checkpoint: step, AP, AP50, AP75, and AP per
class (COCO's averaging: IoU 0.50:0.95, all areas, up to 100 detections).

Usage:
  python -m gc_detection.tools.evaluate_checkpoints \
      --pipeline_config_path=pipeline_configs/context/faster_rcnn_resnet50_gc_context.config \
      --model_dir=models/context_gc --coco_annotations_file=data/context/val_coco.json \
      --image_dir=data/context/val_images --output=models/context_gc/coco_metrics.json
"""
import contextlib
import io
import json
import os
import re
import sys

from absl import app
from absl import flags
import numpy as np

BATCH = 8


def _define_flags():
  flags.DEFINE_string('pipeline_config_path', None, 'The run\'s pipeline.config.',
                      required=True)
  flags.DEFINE_string('model_dir', None, 'The run\'s model_dir (checkpoints).',
                      required=True)
  flags.DEFINE_string('coco_annotations_file', None, 'COCO ground truth JSON.',
                      required=True)
  flags.DEFINE_string('image_dir', None, 'Directory of the JSON\'s file_names.',
                      required=True)
  flags.DEFINE_string('output', None, 'JSON file for the metrics (default: print).')
  flags.DEFINE_bool('latest_only', False, 'Only the newest checkpoint.')


def checkpoint_paths(model_dir):
  """[(step number in the name, path)] of model_dir's listed checkpoints, oldest first."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  state = tf.train.get_checkpoint_state(model_dir)
  if state is None:
    raise FileNotFoundError(f'--model_dir: {model_dir!r} has no checkpoint state file')
  return [(int(re.search(r'ckpt-(\d+)$', path).group(1)), path)
          for path in state.all_model_checkpoint_paths]


def _load_images(ground_truth, image_dir):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  images = []
  for entry in ground_truth['images']:
    path = os.path.join(image_dir, entry['file_name'])
    if not os.path.exists(path):
      raise FileNotFoundError(f'--image_dir: {path} (image {entry["id"]} of the ground '
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
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    self._checkpoint.restore(checkpoint_path).expect_partial()
    step = int(tf.train.load_checkpoint(checkpoint_path).get_tensor(
        'step/.ATTRIBUTES/VARIABLE_VALUE'))
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
  evaluator = CheckpointEvaluator(pipeline_config_path, coco_annotations_file, image_dir)
  paths = checkpoint_paths(model_dir)
  if latest_only:
    paths = paths[-1:]
  results = []
  for _, path in paths:
    results.append(evaluator.evaluate(path))
    if log:
      accuracy = results[-1]['class_accuracy']
      log(f'{os.path.basename(path)} (step {results[-1]["step"]}): AP '
          f'{results[-1]["AP"]:.1f}, AP50 {results[-1]["AP50"]:.1f}, class-agnostic AP '
          f'{results[-1]["AP_class_agnostic"]:.1f}, class accuracy '
          + (f'{accuracy:.0f}%' if accuracy is not None else '-'))
  return results


def main(argv):
  del argv
  values = flags.FLAGS
  try:
    results = evaluate_run(values.pipeline_config_path, values.model_dir,
                           values.coco_annotations_file, values.image_dir,
                           values.latest_only,
                           log=lambda line: print(line, file=sys.stderr, flush=True))
  except FileNotFoundError as error:
    print(f'evaluate_checkpoints: {error}', file=sys.stderr)
    sys.exit(2)
  text = json.dumps(results, indent=2) + '\n'
  if values.output:
    from gc_detection import atomic_files  # pylint: disable=g-import-not-at-top
    atomic_files.write_text(values.output, text)
  else:
    print(text)


if __name__ == '__main__':
  _define_flags()
  app.run(main)
