"""The inputs of the infer command, checked before any image is read.

Every check raises InputError with a message that starts with the flag it
concerns (`--score_threshold=1.5: must be in [0, 1]`); the command reports it
as a usage error. Image ids, the image list and the size the model sees are
decided here too.
"""
import json
import os

import numpy as np

from gc_detection import user_errors
from gc_detection.data import image_files


class InputError(user_errors.UserError, ValueError):
  """A wrong flag value or input file; the message names the flag."""


def check_file(flag_name, path):
  """Raises InputError naming the flag unless path is an existing file."""
  if not path:
    raise InputError(f'--{flag_name} is required')
  if not os.path.isfile(path):
    raise InputError(f'--{flag_name}: no such file: {path}')


def check_numbers(score_threshold, max_detections, max_input_side):
  """Raises InputError naming the first flag whose value is out of range."""
  if not 0.0 <= score_threshold <= 1.0:
    raise InputError(f'--score_threshold={score_threshold}: must be in [0, 1]')
  if max_detections < 1:
    raise InputError(f'--max_detections={max_detections}: must be at least 1')
  if max_input_side < 0:
    raise InputError(f'--max_input_side={max_input_side}: must be 0 (off) or '
                     'positive')


def expand_images(values):
  """image_files.expand_images, with a value that names nothing as an InputError."""
  try:
    return image_files.expand_images(values)
  except image_files.NoImagesError as error:
    raise InputError(str(error)) from error


def read_coco_image_ids(annotations_file):
  """Returns {base name of file_name: image id} of a COCO instances JSON."""
  check_file('coco_annotations_file', annotations_file)
  try:
    with open(annotations_file) as source:
      images = json.load(source)['images']
    return {os.path.basename(image['file_name']): int(image['id'])
            for image in images}
  except (ValueError, KeyError, TypeError) as error:
    raise InputError(
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


def model_input(image, max_input_side):
  """The uint8 (h, w, 3) image the model sees of a uint8 (H, W, 3) image.

  The image itself, or a copy downscaled (bilinear, aspect ratio kept) so that
  its longer side is max_input_side when it exceeds that (0: never).
  """
  height, width = image.shape[:2]
  longer = max(height, width)
  if not max_input_side or longer <= max_input_side:
    return image
  from PIL import Image  # pylint: disable=g-import-not-at-top
  scale = max_input_side / longer
  size = (max(1, round(width * scale)), max(1, round(height * scale)))
  return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


def _check_writable_directory(flag_name, directory):
  """Creates directory if needed; InputError naming the flag unless files can
  be written there."""
  try:
    os.makedirs(directory, exist_ok=True)
    probe = os.path.join(directory, f'.infer_probe.{os.getpid()}.tmp')
    with open(probe, 'w'):
      pass
    os.remove(probe)
  except OSError as error:
    raise InputError(f'--{flag_name}: cannot write into {directory} '
                     f'({error.strerror or error})') from None


def check_outputs(output_json, output_image_dir=None):
  """Checks, before any image is read, that every output can be written.

  Creates the directories. Raises InputError naming the flag: output_json is
  a directory, or a directory on its path is a file or not writable.
  """
  if os.path.isdir(output_json):
    raise InputError(f'--output_json: {output_json} is a directory; expected a '
                     'file name such as results/detections.json')
  _check_writable_directory('output_json', os.path.dirname(os.path.abspath(output_json)))
  if output_image_dir:
    _check_writable_directory('output_image_dir', output_image_dir)
