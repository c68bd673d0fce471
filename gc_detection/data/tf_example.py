"""Writes detection examples in the OD API's tf.Example schema.

The schema is the one `object_detection.data_decoders.tf_example_decoder`
reads (the same keys `create_coco_tf_record.py` writes): the encoded image,
its size, and per-object normalised box corners, class ids and class names;
optionally per-object instance masks, as `image/object/mask` PNG strings (the
decoder's `load_instance_masks: true`, `mask_type: PNG_MASKS`).
"""
import dataclasses
import hashlib
import io
from typing import Optional, Sequence

import numpy as np
from PIL import Image
import tensorflow as tf

from gc_detection import atomic_files


@dataclasses.dataclass(frozen=True)
class DetectionExample:
  """One image and its boxes.

  Attributes:
    image: uint8 array of shape (height, width, 3).
    boxes: float array of shape (num_boxes, 4), [ymin, xmin, ymax, xmax] in
      pixels.
    class_ids: int array of shape (num_boxes,), 1-based label-map ids.
    class_names: one name per box.
    filename: the name stored in image/filename and image/source_id.
    masks: None (no image/object/mask feature), or an array of shape
      (num_boxes, height, width), one instance mask per box; nonzero pixels
      belong to the object. Stored as one single-channel 0/1 PNG per box, as
      `create_coco_tf_record.py` writes them.
  """
  image: np.ndarray
  boxes: np.ndarray
  class_ids: np.ndarray
  class_names: Sequence[str]
  filename: str
  masks: Optional[np.ndarray] = None


def bytes_feature(values):
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def int64_feature(values):
  return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def float_feature(values):
  return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def encode_png(image):
  """Returns the PNG bytes of a uint8 (height, width, 3) array."""
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format='PNG')
  return buffer.getvalue()


def encode_png_masks(masks):
  """Returns one PNG (bytes) per mask of a (num_masks, height, width) array.

  Each PNG is single-channel uint8: 1 where the mask is nonzero, else 0.
  """
  masks = np.asarray(masks)
  return [encode_png((mask != 0).astype(np.uint8)) for mask in masks]


def to_tf_example(example):
  """Returns the tf.train.Example of a DetectionExample (image stored as PNG).

  Raises:
    ValueError: the image is not uint8 (H, W, 3), the box, id and name counts
      differ, or the masks are not one (height, width) mask per box.
  """
  image = np.asarray(example.image)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
    raise ValueError(f'{example.filename}: image must be uint8 (height, width, 3),'
                     f' got {image.dtype} {image.shape}')
  boxes = np.asarray(example.boxes, dtype=np.float64).reshape(-1, 4)
  if not len(boxes) == len(example.class_ids) == len(example.class_names):
    raise ValueError(
        f'{example.filename}: {len(boxes)} boxes, {len(example.class_ids)} '
        f'class ids and {len(example.class_names)} class names must match')
  height, width = image.shape[:2]
  encoded = encode_png(image)
  filename = example.filename.encode('utf8')
  feature = {
      'image/encoded': bytes_feature([encoded]),
      'image/format': bytes_feature([b'png']),
      'image/height': int64_feature([height]),
      'image/width': int64_feature([width]),
      'image/filename': bytes_feature([filename]),
      'image/source_id': bytes_feature([filename]),
      'image/key/sha256': bytes_feature([hashlib.sha256(encoded).hexdigest().encode()]),
      'image/object/bbox/ymin': float_feature(boxes[:, 0] / height),
      'image/object/bbox/xmin': float_feature(boxes[:, 1] / width),
      'image/object/bbox/ymax': float_feature(boxes[:, 2] / height),
      'image/object/bbox/xmax': float_feature(boxes[:, 3] / width),
      'image/object/class/label': int64_feature([int(i) for i in example.class_ids]),
      'image/object/class/text': bytes_feature(
          [name.encode('utf8') for name in example.class_names]),
  }
  if example.masks is not None:
    masks = np.asarray(example.masks)
    if masks.shape != (len(boxes), height, width):
      raise ValueError(
          f'{example.filename}: masks must have shape (num_boxes, height, width)'
          f' = {(len(boxes), height, width)}, got {masks.shape}')
    feature['image/object/mask'] = bytes_feature(encode_png_masks(masks))
  return tf.train.Example(features=tf.train.Features(feature=feature))


def write_tfrecord(path, examples):
  """Writes DetectionExamples to a TFRecord file atomically.

  The records go to a temporary file, renamed to `path` only once every
  record is written (gc_detection.atomic_files), so a crash never leaves a
  truncated file under `path`. Returns the number of records written.
  """
  count = 0

  def write(temporary):
    nonlocal count
    with tf.io.TFRecordWriter(temporary) as writer:
      for example in examples:
        writer.write(to_tf_example(example).SerializeToString())
        count += 1
  atomic_files.write_atomically(path, write)
  return count


def label_map_text(class_names, ids=None):
  """The text of an OD API label map (StringIntLabelMap) of class_names.

  The one writer of every label map gc_detection makes: one line per class,
  `item { id: 1 name: 'sun' display_name: 'sun' }`, which
  `object_detection.utils.label_map_util` reads (the trainer's decoder
  matches `name`; `get_label_map_dict(..., use_display_name=True)` and the
  category index read `display_name`).

  Args:
    class_names: the names, in id order (any iterable of str; the keys of a
      {name: ...} dict work).
    ids: the id of each name, e.g. COCO's 1..90 with gaps; default 1, 2, ...
  """
  from google.protobuf import text_encoding  # pylint: disable=g-import-not-at-top
  names = list(class_names)
  ids = list(range(1, len(names) + 1)) if ids is None else [int(i) for i in ids]
  if len(ids) != len(names):
    raise ValueError(f'{len(names)} class names for {len(ids)} ids')
  lines = []
  for class_id, name in zip(ids, names):
    quoted = "'" + text_encoding.CEscape(name, as_utf8=True) + "'"
    lines.append(f'item {{ id: {class_id} name: {quoted} display_name: {quoted} }}\n')
  return ''.join(lines)
