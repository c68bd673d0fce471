"""The infer command's loop: every image through a Detector into the results.

An image that cannot be read, run or drawn is reported on stderr
(`infer: skipped <path>: <reason>`) and skipped; the others are still
processed. The JSON is written at the end, and also when the run is
interrupted, with the results of the images done so far.
"""
import collections
import os
import sys

from gc_detection.data import image_files
from gc_detection.data.image_files import ImageError
from gc_detection.od_api import detection_inputs
from gc_detection.od_api import detection_outputs

# path: the input as expanded; reason: one line saying why it was skipped.
Failure = collections.namedtuple('Failure', 'path reason')
# results: the COCO result dicts; failures: Failures; processed: images read.
Summary = collections.namedtuple('Summary', 'results failures processed')


def count(number, noun):
  """'1 image', '2 images'."""
  return f'{number} {noun}' + ('' if number == 1 else 's')


def _report(path, reason):
  import tqdm  # pylint: disable=g-import-not-at-top
  tqdm.tqdm.write(f'infer: skipped {path}: {reason}', file=sys.stderr)


def _progress(items):
  """A progress bar over items on stderr, shown only when it is a terminal."""
  import tqdm  # pylint: disable=g-import-not-at-top
  return tqdm.tqdm(items, file=sys.stderr, unit='image', desc='infer',
                   disable=True if len(items) < 2 else None)


def process_image(detector, path, score_threshold, max_detections,
                  max_input_side):
  """(uint8 (H, W, 3) EXIF-oriented image, its selected Detections).

  Boxes are normalised, so they fit the original image even when the model
  saw a downscaled copy. Raises ImageError.
  """
  image = image_files.load_image(path)
  model_image = detection_inputs.model_input(image, max_input_side)
  try:
    detections = detector(model_image)
  except ImageError as error:
    if model_image.shape == image.shape:
      raise
    raise ImageError(
        f'{error} (the {image.shape[0]}x{image.shape[1]} image was downscaled to '
        f'{model_image.shape[0]}x{model_image.shape[1]} by --max_input_side)') from error
  return image, detection_outputs.select(detections, score_threshold, max_detections)


def run(detector, category_index, paths, output_json, output_image_dir=None,
        score_threshold=0.3, max_detections=100, coco_ids=None,
        image_format='png', max_input_side=4096):
  """Detects objects in every path; writes the JSON (and pictures).

  Args:
    detector: an exported_detector.Detector, or any callable: uint8 (H, W, 3)
      -> Detections.
    category_index: {id: {'id', 'name'}} (exported_detector.load_category_index).
    paths: image files (detection_inputs.expand_images).
    output_json: where the COCO results go.
    output_image_dir: if set, where the pictures go.
    score_threshold, max_detections: see detection_outputs.select().
    coco_ids: {base name: image id} (detection_inputs.read_coco_image_ids) or None.
    image_format: 'png' or 'jpg', of the pictures.
    max_input_side: see detection_inputs.model_input().

  Returns:
    Summary(results, failures, processed).
  """
  image_ids = detection_inputs.assign_image_ids(paths, coco_ids)
  names = detection_outputs.picture_names(paths, image_format)
  results, failures, processed = [], [], 0
  try:
    for path, image_id, name in _progress(list(zip(paths, image_ids, names))):
      try:
        if image_id is None:
          raise ImageError(f'no image named {os.path.basename(path)!r} in '
                           '--coco_annotations_file')
        image, detections = process_image(detector, path, score_threshold,
                                          max_detections, max_input_side)
        if output_image_dir:
          detection_outputs.save_drawing(os.path.join(output_image_dir, name), image,
                                         detections, category_index, image_format)
      except ImageError as error:
        failures.append(Failure(path, str(error)))
        _report(path, error)
        continue
      processed += 1
      results.extend(detection_outputs.coco_results(
          detections, image_id, os.path.basename(path), image.shape[0],
          image.shape[1], category_index))
  except BaseException:
    # Interrupted (Ctrl-C, a crash in the model): keep what was done.
    detection_outputs.write_json(output_json, results)
    print(f'infer: stopped after {count(processed, "image")} of {len(paths)}; '
          f'their {count(len(results), "detection")} are in {output_json}',
          file=sys.stderr)
    raise
  detection_outputs.write_json(output_json, results)
  return Summary(results, failures, processed)
