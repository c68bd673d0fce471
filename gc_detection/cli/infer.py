r"""Runs an exported OD API detection model on image files; writes COCO results.

Works with any model exported by the OD API's `exporter_main_v2` (or
`scripts/export.sh`) with `--input_type=image_tensor`, GC or not: the
SavedModel's `serving_default` signature is called with each image as a uint8
(1, height, width, 3) `input_tensor`; the model resizes it itself.

Usage:
  python -m gc_detection.cli.infer \
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
flag value: `infer: error: <message naming the flag>`). The JSON and every
picture are written to a temporary file in the destination directory and
renamed, so no half-written file is ever left behind.
"""
from absl import flags

from gc_detection.cli import program
from gc_detection.od_api import detection_inputs
from gc_detection.od_api import detection_run
from gc_detection.od_api import exported_detector

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


def _prepare():
  """Checks the flags, cheap checks first; returns what detection_run.run needs.

  Raises detection_inputs.InputError naming the flag.
  """
  detection_inputs.check_numbers(_SCORE_THRESHOLD.value, _MAX_DETECTIONS.value,
                                 _MAX_INPUT_SIDE.value)
  saved_model_dir = exported_detector.find_saved_model(_SAVED_MODEL_DIR.value)
  detection_inputs.check_file('label_map_path', _LABEL_MAP_PATH.value)
  paths = detection_inputs.expand_images(_IMAGES.value)
  coco_ids = (detection_inputs.read_coco_image_ids(_COCO_ANNOTATIONS_FILE.value)
              if _COCO_ANNOTATIONS_FILE.value else None)
  category_index = exported_detector.load_category_index(_LABEL_MAP_PATH.value)
  detection_inputs.check_outputs(_OUTPUT_JSON.value, _OUTPUT_IMAGE_DIR.value)
  detector = exported_detector.Detector(saved_model_dir)
  return detector, category_index, paths, coco_ids


def main(argv):
  program.no_arguments(argv, hint='pass images with --images')
  program.require('saved_model_dir', 'label_map_path', 'images', 'output_json')
  try:
    detector, category_index, paths, coco_ids = _prepare()
  except detection_inputs.InputError as error:
    raise program.UsageError(str(error)) from error
  summary = detection_run.run(
      detector, category_index, paths, _OUTPUT_JSON.value, _OUTPUT_IMAGE_DIR.value,
      _SCORE_THRESHOLD.value, _MAX_DETECTIONS.value, coco_ids, _IMAGE_FORMAT.value,
      _MAX_INPUT_SIDE.value)
  count = detection_run.count
  print(f'infer: {count(len(summary.results), "detection")} in '
        f'{count(summary.processed, "image")} -> {_OUTPUT_JSON.value}'
        + (f'; {len(summary.failures)} skipped (see above)'
           if summary.failures else ''))
  return program.EXIT_USER_ERROR if summary.failures else program.EXIT_OK


if __name__ == '__main__':
  program.run(main)
