"""The model side of the infer command: an exported OD API model and its labels.

Any model exported by the OD API's `exporter_main_v2` with
`--input_type=image_tensor`, GC or not: its `serving_default` signature takes
one uint8 (1, H, W, 3) `input_tensor` and resizes it itself.
"""
import collections
import contextlib
import logging
import os

import numpy as np

from gc_detection import op_errors
from gc_detection.data.image_files import ImageError
from gc_detection.od_api.detection_inputs import check_file
from gc_detection.od_api.detection_inputs import InputError

# boxes: float32 (N, 4) normalised [ymin, xmin, ymax, xmax]; scores: float32
# (N,); classes: int64 (N,) 1-based label-map ids.
Detections = collections.namedtuple('Detections', 'boxes scores classes')


def find_saved_model(path):
  """Returns the directory holding saved_model.pb: path or path/saved_model."""
  if not path:
    raise InputError('--saved_model_dir is required')
  for candidate in (path, os.path.join(path, 'saved_model')):
    if os.path.isfile(os.path.join(candidate, 'saved_model.pb')):
      return candidate
  if not os.path.isdir(path):
    raise InputError(f'--saved_model_dir: no such directory: {path}')
  raise InputError(
      f'--saved_model_dir: no saved_model.pb in {path} or '
      f'{os.path.join(path, "saved_model")} (expected the output directory of '
      'exporter_main_v2)')


def load_category_index(label_map_path):
  """{id: {'id': id, 'name': name}} of a StringIntLabelMap pbtxt.

  The name is the item's display_name if set, else its name.
  """
  check_file('label_map_path', label_map_path)
  from object_detection.utils import label_map_util  # pylint: disable=g-import-not-at-top
  from gc_detection.od_api import label_maps  # pylint: disable=g-import-not-at-top
  try:
    label_map = label_maps.load_label_map(label_map_path)
  except label_maps.LabelMapError as error:
    raise InputError(f'--label_map_path: {error}') from error
  categories = label_map_util.convert_label_map_to_categories(
      label_map, max(item.id for item in label_map.item) if label_map.item else 0,
      use_display_name=True)
  return label_map_util.create_category_index(categories)


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
    """Loads the SavedModel in saved_model_dir (the directory of saved_model.pb).

    Raises InputError naming --saved_model_dir when it cannot be loaded or
    takes no uint8 image tensor.
    """
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    self._tf = tf
    try:
      # Kept: the signature needs the loaded object's variables alive.
      with _without_gradient_notices():
        self._loaded = tf.saved_model.load(saved_model_dir)
    except Exception as error:  # pylint: disable=broad-except
      raise InputError(f'--saved_model_dir: cannot load the SavedModel in '
                       f'{saved_model_dir}: {error}') from error
    self._signature = self._loaded.signatures.get('serving_default')
    if self._signature is None:
      raise InputError(f'--saved_model_dir: {saved_model_dir} has no '
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
      raise InputError(
          f'--saved_model_dir: {saved_model_dir} takes {sorted(inputs)}, not a '
          'uint8 (1, H, W, 3) input_tensor; export it with '
          '--input_type=image_tensor')

  def __call__(self, image):
    """Detections of a uint8 (H, W, 3) image: all the model returns, in its order.

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
