"""What the infer command writes: COCO result dicts, the JSON, the pictures.

Boxes come in as the OD API gives them, normalised [ymin, xmin, ymax, xmax];
the JSON has COCO's [x, y, width, height] in pixels of the original,
EXIF-oriented image. Every file is written through atomic_files.
"""
import json

import numpy as np

from gc_detection import atomic_files
from gc_detection.data import image_files
from gc_detection.od_api.exported_detector import Detections

_PICTURE_SAVE_ARGS = {'png': ('PNG', {}), 'jpg': ('JPEG', {'quality': 90})}


def select(detections, score_threshold, max_detections):
  """Detections with score >= score_threshold, best first, at most max_detections."""
  order = np.argsort(-detections.scores, kind='stable')
  order = order[detections.scores[order] >= score_threshold][:max_detections]
  return Detections(detections.boxes[order], detections.scores[order],
                    detections.classes[order])


def to_coco_boxes(boxes, height, width):
  """float64 (N, 4) [x, y, width, height] pixels of (N, 4) normalised boxes.

  boxes: [ymin, xmin, ymax, xmax] in [0, 1] (clipped to it) of an image of
  height x width pixels.
  """
  boxes = np.clip(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), 0.0, 1.0)
  ymin, xmin, ymax, xmax = boxes.T
  return np.stack([xmin * width, ymin * height,
                   (xmax - xmin) * width, (ymax - ymin) * height], axis=1)


def coco_results(detections, image_id, file_name, height, width, category_index):
  """The COCO result dicts of one height x width image's (selected) detections.

  Each: image_id, file_name, category_id, category_name (None if the id is
  not in category_index), bbox [x, y, width, height] pixels, score.
  """
  results = []
  pixel_boxes = to_coco_boxes(detections.boxes, height, width)
  for box, score, class_id in zip(pixel_boxes, detections.scores,
                                  detections.classes):
    category = category_index.get(int(class_id))
    results.append({
        'image_id': int(image_id),
        'file_name': file_name,
        'category_id': int(class_id),
        'category_name': category['name'] if category else None,
        'bbox': [round(float(value), 3) for value in box],
        'score': round(float(score), 6),
    })
  return results


def picture_names(paths, image_format):
  """Returns a distinct picture file name per path: stem.FORMAT, stem_2.FORMAT..."""
  return [f'{stem}.{image_format}' for stem in image_files.distinct_stems(paths)]


def draw(image, detections, category_index):
  """A uint8 (H, W, 3) copy of a uint8 (H, W, 3) image with the detections drawn."""
  from object_detection.utils import visualization_utils  # pylint: disable=g-import-not-at-top
  return visualization_utils.visualize_boxes_and_labels_on_image_array(
      image.copy(), detections.boxes, detections.classes, detections.scores,
      category_index, use_normalized_coordinates=True, max_boxes_to_draw=None,
      min_score_thresh=float('-inf'),  # select() has applied the threshold
      line_thickness=max(2, round(max(image.shape[:2]) / 300)))


def write_json(path, results):
  """Writes the result list as JSON (atomically)."""
  def write(temporary):
    with open(temporary, 'w') as out:
      json.dump(results, out)
  atomic_files.write_atomically(path, write)


def save_picture(path, image, image_format):
  """Writes a uint8 (H, W, 3) image as 'png' or 'jpg' (atomically)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  pil_format, options = _PICTURE_SAVE_ARGS[image_format]
  atomic_files.write_atomically(path, lambda temporary: Image.fromarray(image).save(
      temporary, format=pil_format, **options))


def save_drawing(path, image, detections, category_index, image_format):
  """Draws the detections on a uint8 (H, W, 3) image and saves it at path.

  Raises image_files.ImageError if the picture cannot be written.
  """
  try:
    save_picture(path, draw(image, detections, category_index), image_format)
  except OSError as error:
    raise image_files.ImageError(f'cannot write the picture {path} '
                                 f'({error.strerror or error})') from error
