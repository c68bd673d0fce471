r"""Runs an exported OD API detection model on image files; writes COCO results.

Works with any model exported by the OD API's `exporter_main_v2` (or
`scripts/export.sh`) with `--input_type=image_tensor`, GC or not: the
SavedModel's `serving_default` signature is called with each image as a uint8
(1, height, width, 3) `input_tensor`; the model resizes it itself.

Usage:
  python -m gc_detection.infer \
      --saved_model_dir=exported/frcnn_r50_gc \
      --label_map_path=data/label_map.pbtxt \
      --images=photos/ --images='more/*.jpg,one.png' \
      --output_json=results/detections.json \
      [--output_image_dir=results/pictures] [--image_format=png|jpg] \
      [--score_threshold=0.3] [--max_detections=100] \
      [--coco_annotations_file=annotations/instances_val2017.json] \
      [--max_input_side=4096]

Inputs (--images, repeatable and/or comma-separated):
  * a file: used whatever its name; its content decides the format;
  * a directory: its *.jpg, *.jpeg and *.png files (any case, not recursive);
  * a glob (`*`, `?`, `[...]`; `**` recurses): every match.
  A value that names nothing is a usage error (exit 2). The same file named
  twice is processed once.

Images: JPEG and PNG only (decided by content, not by extension; a camera's
multi-picture JPEG gives its first frame); GIF, BMP, TIFF, WebP, ... are
reported as unsupported. Grayscale and palette images become
RGB; an alpha channel is dropped; 16-bit PNGs are scaled to 8 bits (x 255 /
65535); the EXIF orientation is applied first, so boxes are in the frame an
image viewer shows. An image whose longer side exceeds --max_input_side is
downscaled (aspect ratio kept) before it is passed to the model, to bound
memory; boxes are still reported in the original image's pixels. 0 disables.

Output JSON (COCO detection results; loads with pycocotools' COCO.loadRes):
a list of {"image_id", "file_name" (the input's base name), "category_id" (the
label-map id), "category_name" (null if the id is not in the label map),
"bbox": [x, y, width, height] in pixels of the original, EXIF-oriented image,
"score"}, per image in input order, by decreasing score; only detections with
score >= --score_threshold, at most --max_detections per image.

image_id: with --coco_annotations_file, the id of the `images` entry whose
file_name has the same base name (an image not listed there is reported and
skipped). Otherwise int(stem) when the file's stem is all digits (COCO style:
000000397133.jpg -> 397133); every other image (and a repeat of a numeric id)
gets a running id: one more than the largest id given so far, in input order.

Pictures (--output_image_dir): one per image read, named after the input
(`photo.jpg` -> `photo.png`), with `_2`, `_3`, ... added when two inputs share a
stem (`a/x.jpg` and `b/x.jpg` -> `x.png`, `x_2.png`); boxes, class names and
scores are drawn with the OD API's visualization_utils.

Exit status: 0 when every image was processed; 1 when any image was skipped
(each one is named on stderr with the reason; the others are still
processed and the JSON is written); 2 for a usage error (a missing or wrong
flag value: the message names the flag). The JSON and every picture are
written to a temporary file in the destination directory and renamed, so no
half-written file is ever left behind.
"""
import collections
import contextlib
import json
import logging
import os
import sys

from absl import app
from absl import flags
import numpy as np

from gc_detection import atomic_files
from gc_detection import op_errors
from gc_detection.data import image_files
from gc_detection.data.image_files import ImageError
from gc_detection.data.image_files import load_image

def _define_flags():
  """Defines the command-line flags; only when run as a program, so that
  importing this module next to other gc_detection tools cannot clash in
  absl's global flag registry."""
  global _SAVED_MODEL_DIR, _LABEL_MAP_PATH, _IMAGES, _OUTPUT_JSON, _OUTPUT_IMAGE_DIR, _IMAGE_FORMAT, _SCORE_THRESHOLD, _MAX_DETECTIONS, _COCO_ANNOTATIONS_FILE, _MAX_INPUT_SIDE  # pylint: disable=global-statement
  _SAVED_MODEL_DIR = flags.DEFINE_string(
      'saved_model_dir', None, 'Output directory of exporter_main_v2 (holding '
      'saved_model/), or the saved_model/ directory itself.')
  _LABEL_MAP_PATH = flags.DEFINE_string(
      'label_map_path', None, 'StringIntLabelMap (.pbtxt) of the model: class '
      'names (display_name if set, else name) by id.')
  _IMAGES = flags.DEFINE_multi_string(
      'images', None, 'Image files, directories (their *.jpg, *.jpeg, *.png) or '
      'globs; comma-separated and/or repeated.')
  _OUTPUT_JSON = flags.DEFINE_string(
      'output_json', None, 'Where to write the COCO detection results (JSON).')
  _OUTPUT_IMAGE_DIR = flags.DEFINE_string(
      'output_image_dir', None, 'Optional: write one picture per image here, '
      'with the detections drawn.')
  _IMAGE_FORMAT = flags.DEFINE_enum(
      'image_format', 'png', ['png', 'jpg'], 'Format of the pictures.')
  _SCORE_THRESHOLD = flags.DEFINE_float(
      'score_threshold', 0.3, 'Keep detections with score >= this (0 keeps all).')
  _MAX_DETECTIONS = flags.DEFINE_integer(
      'max_detections', 100, 'Keep at most this many detections per image (the '
      'model may return fewer: its max_total_detections).')
  _COCO_ANNOTATIONS_FILE = flags.DEFINE_string(
      'coco_annotations_file', None, 'Optional COCO instances JSON: image ids are '
      'looked up there by file name.')
  _MAX_INPUT_SIDE = flags.DEFINE_integer(
      'max_input_side', 4096, 'Downscale an image whose longer side is larger '
      'than this before the model sees it (bounds memory; boxes stay in original '
      'pixels). 0: never.')

_PICTURE_SAVE_ARGS = {'png': ('PNG', {}), 'jpg': ('JPEG', {'quality': 90})}

# boxes: float32 (N, 4) normalised [ymin, xmin, ymax, xmax]; scores: float32
# (N,); classes: int64 (N,) 1-based label-map ids. By decreasing score.
Detections = collections.namedtuple('Detections', 'boxes scores classes')
# path: the input as expanded; reason: one line saying why it was skipped.
Failure = collections.namedtuple('Failure', 'path reason')
# results: the COCO result dicts; failures: Failures; processed: images read.
Summary = collections.namedtuple('Summary', 'results failures processed')


class UsageError(Exception):
  """A wrong flag value; the message names the flag. Exit status 2."""


# --- Inputs -----------------------------------------------------------------


def _check_file(flag_name, path):
  """UsageError naming the flag unless path is an existing file."""
  if not path:
    raise UsageError(f'--{flag_name} is required')
  if not os.path.isfile(path):
    raise UsageError(f'--{flag_name}: no such file: {path}')


def find_saved_model(path):
  """Returns the directory holding saved_model.pb: path or path/saved_model."""
  if not path:
    raise UsageError('--saved_model_dir is required')
  for candidate in (path, os.path.join(path, 'saved_model')):
    if os.path.isfile(os.path.join(candidate, 'saved_model.pb')):
      return candidate
  if not os.path.isdir(path):
    raise UsageError(f'--saved_model_dir: no such directory: {path}')
  raise UsageError(
      f'--saved_model_dir: no saved_model.pb in {path} or '
      f'{os.path.join(path, "saved_model")} (expected the output directory of '
      'exporter_main_v2)')


def read_coco_image_ids(annotations_file):
  """Returns {base name of file_name: image id} of a COCO instances JSON."""
  _check_file('coco_annotations_file', annotations_file)
  try:
    with open(annotations_file) as source:
      images = json.load(source)['images']
    return {os.path.basename(image['file_name']): int(image['id'])
            for image in images}
  except (ValueError, KeyError, TypeError) as error:
    raise UsageError(
        f'--coco_annotations_file: {annotations_file} is not a COCO instances '
        f'JSON with images[].file_name and images[].id ({error!r})') from error


def _numeric_stem_id(path):
  """int(stem) when the file's stem is all ASCII digits, else None."""
  stem = os.path.splitext(os.path.basename(path))[0]
  return int(stem) if stem.isascii() and stem.isdigit() else None


def assign_image_ids(paths, coco_ids=None):
  """Returns one image id per path (None: not in coco_ids).

  With coco_ids ({base name: id}) the ids are looked up by base name.
  Otherwise: int(stem) for all-digit stems, and for the others (and a
  numeric id already taken) one more than the largest id given so far.
  """
  if coco_ids is not None:
    return [coco_ids.get(os.path.basename(path)) for path in paths]
  numeric = [_numeric_stem_id(path) for path in paths]
  largest = max([number for number in numeric if number is not None], default=0)
  ids, taken = [], set()
  for number in numeric:
    if number is None or number in taken:
      largest += 1
      number = largest
    taken.add(number)
    ids.append(number)
  return ids


def picture_names(paths, image_format):
  """Returns a distinct picture file name per path: stem.FORMAT, stem_2.FORMAT..."""
  return [f'{stem}.{image_format}' for stem in image_files.distinct_stems(paths)]


# --- Images -----------------------------------------------------------------


def expand_images(values):
  """image_files.expand_images, with a bad value as a UsageError (exit 2)."""
  try:
    return image_files.expand_images(values)
  except image_files.NoImagesError as error:
    raise UsageError(str(error)) from error


def model_input(image, max_input_side):
  """The uint8 (h, w, 3) image the model sees: image, or a downscaled copy.

  Downscaled (aspect ratio kept) when its longer side exceeds max_input_side
  (0: never).
  """
  height, width = image.shape[:2]
  longer = max(height, width)
  if not max_input_side or longer <= max_input_side:
    return image
  from PIL import Image  # pylint: disable=g-import-not-at-top
  scale = max_input_side / longer
  size = (max(1, round(width * scale)), max(1, round(height * scale)))
  return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


# --- The model --------------------------------------------------------------


class _DropGradientNotices(logging.Filter):
  """Drops 'Importing a function ... with unsaved custom gradients' warnings.

  TensorFlow logs one per such function when it loads an OD API export; they
  concern gradients, which inference never takes.
  """

  def filter(self, record):
    return not record.getMessage().startswith('Importing a function (')


@contextlib.contextmanager
def _without_gradient_notices():
  logger = logging.getLogger('absl')
  notice_filter = _DropGradientNotices()
  logger.addFilter(notice_filter)
  try:
    yield
  finally:
    logger.removeFilter(notice_filter)


class Detector:
  """The `serving_default` signature of an exported OD API detection model."""

  def __init__(self, saved_model_dir):
    """Loads the SavedModel in saved_model_dir (the directory of saved_model.pb)."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    self._tf = tf
    try:
      # Keep the loaded object: the signature needs its variables alive.
      with _without_gradient_notices():
        self._loaded = tf.saved_model.load(saved_model_dir)
    except Exception as error:  # pylint: disable=broad-except
      raise UsageError(f'--saved_model_dir: cannot load the SavedModel in '
                       f'{saved_model_dir}: {error}') from error
    self._signature = self._loaded.signatures.get('serving_default')
    if self._signature is None:
      raise UsageError(f'--saved_model_dir: {saved_model_dir} has no '
                       'serving_default signature')
    self._check_input(saved_model_dir)

  @property
  def signature(self):
    """The serving_default ConcreteFunction: input_tensor uint8 (1, H, W, 3)."""
    return self._signature

  def _check_input(self, saved_model_dir):
    inputs = self._signature.structured_input_signature[1]
    spec = inputs.get('input_tensor')
    if spec is None or spec.dtype != self._tf.uint8 or spec.shape.rank != 4:
      raise UsageError(
          f'--saved_model_dir: {saved_model_dir} takes {sorted(inputs)}, not a '
          'uint8 (1, H, W, 3) input_tensor; export it with '
          '--input_type=image_tensor')

  def __call__(self, image):
    """Detections of a uint8 (height, width, 3) image, all the model returns.

    Raises ImageError when the model fails on this image.
    """
    tf = self._tf
    try:
      outputs = self._signature(input_tensor=tf.constant(image[None]))
    except (tf.errors.OpError, ValueError) as error:
      raise ImageError(op_errors.model_failure(error, image.shape)) from error
    count = int(outputs['num_detections'][0])
    classes = outputs['detection_classes'][0, :count].numpy()
    return Detections(boxes=outputs['detection_boxes'][0, :count].numpy(),
                      scores=outputs['detection_scores'][0, :count].numpy(),
                      classes=np.rint(classes).astype(np.int64))


def load_category_index(label_map_path):
  """{id: {'id': id, 'name': name}} of a StringIntLabelMap pbtxt."""
  _check_file('label_map_path', label_map_path)
  from object_detection.utils import label_map_util  # pylint: disable=g-import-not-at-top
  from gc_detection.data import label_maps  # pylint: disable=g-import-not-at-top
  try:
    label_map = label_maps.load_label_map(label_map_path)
  except label_maps.LabelMapError as error:
    raise UsageError(f'--label_map_path: {error}') from error
  categories = label_map_util.convert_label_map_to_categories(
      label_map, max(item.id for item in label_map.item) if label_map.item else 0,
      use_display_name=True)
  return label_map_util.create_category_index(categories)


# --- Results ----------------------------------------------------------------


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
  """The COCO result dicts of one image's (selected) detections."""
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


def draw(image, detections, category_index):
  """A uint8 (H, W, 3) copy of image with the detections drawn on it."""
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
  """Writes a uint8 (H, W, 3) image as png or jpg (atomically)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  pil_format, options = _PICTURE_SAVE_ARGS[image_format]
  atomic_files.write_atomically(path, lambda temporary: Image.fromarray(image).save(
      temporary, format=pil_format, **options))


# --- The run ----------------------------------------------------------------


def _report(path, reason):
  import tqdm  # pylint: disable=g-import-not-at-top
  tqdm.tqdm.write(f'infer: skipped {path}: {reason}', file=sys.stderr)


def _progress(items):
  import tqdm  # pylint: disable=g-import-not-at-top
  # disable=None: only when stderr is a terminal.
  return tqdm.tqdm(items, file=sys.stderr, unit='image', desc='infer',
                   disable=True if len(items) < 2 else None)


def process_image(detector, path, score_threshold, max_detections,
                  max_input_side):
  """(uint8 (H, W, 3) EXIF-oriented image, its selected Detections).

  Raises ImageError.
  """
  image = load_image(path)
  model_image = model_input(image, max_input_side)
  try:
    detections = detector(model_image)
  except ImageError as error:
    if model_image.shape == image.shape:
      raise
    raise ImageError(
        f'{error} (the {image.shape[0]}x{image.shape[1]} image was downscaled to '
        f'{model_image.shape[0]}x{model_image.shape[1]} by --max_input_side)') from error
  return image, select(detections, score_threshold, max_detections)


def run(detector, category_index, paths, output_json, output_image_dir=None,
        score_threshold=0.3, max_detections=100, coco_ids=None,
        image_format='png', max_input_side=4096):
  """Detects objects in every path; writes the JSON (and pictures).

  Args:
    detector: a Detector (or any callable: uint8 (H, W, 3) -> Detections).
    category_index: {id: {'id', 'name'}} (load_category_index).
    paths: image files (expand_images).
    output_json: where the COCO results go.
    output_image_dir: if set, where the pictures go.
    score_threshold, max_detections: see select().
    coco_ids: {base name: image id} (read_coco_image_ids) or None.
    image_format: 'png' or 'jpg', of the pictures.
    max_input_side: see model_input().

  Returns:
    Summary(results, failures, processed). Each failure is reported on stderr
    as it happens; the other images are still processed.
  """
  image_ids = assign_image_ids(paths, coco_ids)
  names = picture_names(paths, image_format)
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
          _save_drawing(os.path.join(output_image_dir, name), image, detections,
                        category_index, image_format)
      except ImageError as error:
        failures.append(Failure(path, str(error)))
        _report(path, error)
        continue
      processed += 1
      results.extend(coco_results(detections, image_id, os.path.basename(path),
                                  image.shape[0], image.shape[1], category_index))
  except BaseException:
    # Interrupted (Ctrl-C, a crash in the model): keep what was done.
    write_json(output_json, results)
    print(f'infer: stopped after {_count(processed, "image")} of {len(paths)}; '
          f'their {_count(len(results), "detection")} are in {output_json}',
          file=sys.stderr)
    raise
  write_json(output_json, results)
  return Summary(results, failures, processed)


def _save_drawing(path, image, detections, category_index, image_format):
  """Draws and saves one picture; ImageError if it cannot be written."""
  try:
    save_picture(path, draw(image, detections, category_index), image_format)
  except OSError as error:
    raise ImageError(f'cannot write the picture {path} '
                     f'({error.strerror or error})') from error


def _check_writable_directory(flag_name, directory):
  """Creates directory if needed; UsageError naming the flag unless files can
  be written there."""
  try:
    os.makedirs(directory, exist_ok=True)
    probe = os.path.join(directory, f'.infer_probe.{os.getpid()}.tmp')
    with open(probe, 'w'):
      pass
    os.remove(probe)
  except OSError as error:
    raise UsageError(f'--{flag_name}: cannot write into {directory} '
                     f'({error.strerror or error})') from None


def check_outputs(output_json, output_image_dir=None):
  """Checks, before any image is read, that every output can be written.

  Creates the directories. Raises UsageError naming the flag: output_json is
  a directory, or a directory on its path is a file or not writable.
  """
  if os.path.isdir(output_json):
    raise UsageError(f'--output_json: {output_json} is a directory; expected a '
                     'file name such as results/detections.json')
  _check_writable_directory('output_json', os.path.dirname(os.path.abspath(output_json)))
  if output_image_dir:
    _check_writable_directory('output_image_dir', output_image_dir)


def _check_numbers(score_threshold, max_detections, max_input_side):
  if not 0.0 <= score_threshold <= 1.0:
    raise UsageError(f'--score_threshold={score_threshold}: must be in [0, 1]')
  if max_detections < 1:
    raise UsageError(f'--max_detections={max_detections}: must be at least 1')
  if max_input_side < 0:
    raise UsageError(f'--max_input_side={max_input_side}: must be 0 (off) or '
                     'positive')


def _prepare():
  """Checks the flags (cheap checks first); returns what run() needs."""
  if not _OUTPUT_JSON.value:
    raise UsageError('--output_json is required')
  _check_numbers(_SCORE_THRESHOLD.value, _MAX_DETECTIONS.value,
                 _MAX_INPUT_SIDE.value)
  saved_model_dir = find_saved_model(_SAVED_MODEL_DIR.value)
  _check_file('label_map_path', _LABEL_MAP_PATH.value)
  paths = expand_images(_IMAGES.value)
  coco_ids = (read_coco_image_ids(_COCO_ANNOTATIONS_FILE.value)
              if _COCO_ANNOTATIONS_FILE.value else None)
  category_index = load_category_index(_LABEL_MAP_PATH.value)  # imports TF
  check_outputs(_OUTPUT_JSON.value, _OUTPUT_IMAGE_DIR.value)
  return saved_model_dir, category_index, paths, coco_ids


def _count(number, noun):
  return f'{number} {noun}' + ('' if number == 1 else 's')


def main(argv):
  if len(argv) > 1:
    print(f'infer: unexpected arguments: {" ".join(argv[1:])} (pass images '
          'with --images)', file=sys.stderr)
    return 2
  try:
    saved_model_dir, category_index, paths, coco_ids = _prepare()
    detector = Detector(saved_model_dir)
  except UsageError as error:
    print(f'infer: {error}', file=sys.stderr)
    return 2
  summary = run(detector, category_index, paths, _OUTPUT_JSON.value,
                _OUTPUT_IMAGE_DIR.value, _SCORE_THRESHOLD.value,
                _MAX_DETECTIONS.value, coco_ids, _IMAGE_FORMAT.value,
                _MAX_INPUT_SIDE.value)
  print(f'infer: {_count(len(summary.results), "detection")} in '
        f'{_count(summary.processed, "image")} -> {_OUTPUT_JSON.value}'
        + (f'; {len(summary.failures)} skipped (see above)'
           if summary.failures else ''))
  return 1 if summary.failures else 0


def _parse_flags(argv):
  """absl's flag parsing, but a bad flag exits with status 2 (usage error)."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as error:
    print(f'infer: {error}\nPass --helpfull to see every flag.', file=sys.stderr)
    sys.exit(2)


if __name__ == '__main__':
  _define_flags()
  app.run(main, flags_parser=_parse_flags)
