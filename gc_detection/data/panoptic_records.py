"""Writes panoptic examples in TF Model Garden's tf.Example schema.

One tf.Example per image holds what official.vision's Mask R-CNN decoder
reads (`official.vision.dataloaders.tf_example_decoder`: the encoded image,
its size, numeric `image/source_id`, per-instance normalised box corners,
class ids, areas, is_crowd and one 0/1 PNG mask each under
`image/object/mask`) plus the panoptic masks under the keys of
`official.vision.data.tf_example_feature_key.EncodedPanopticMaskFeatureKey`
(`image/panoptic/category/encoded` and `image/panoptic/instance/encoded`,
8-bit single-channel PNGs of the image's size).

Category and instance ids follow gc_detection.model_garden.panoptic_fusion:
category 0 void, 1..T things, T+1..T+S stuff; instance ids 1..255, unique in
the image, 0 for stuff and void.
"""
import dataclasses
from typing import Optional

import numpy as np
import tensorflow as tf

from gc_detection.data import tf_example

MAX_INSTANCE_ID = 255


@dataclasses.dataclass(frozen=True)
class PanopticExample:
  """One image with its instances and panoptic masks.

  Attributes:
    image_id: int, stored as the numeric image/source_id.
    height, width: the image's size.
    encoded_image: the image file's bytes, stored unchanged, in image_format.
    boxes: float (N, 4) [ymin, xmin, ymax, xmax] px of the thing instances.
    classes: int (N,) thing classes 1..T.
    instance_masks: uint8 (N, height, width), nonzero inside instance n.
    is_crowd: bool (N,).
    category_mask, instance_mask: uint8 (height, width).
    filename: stored as image/filename.
  """
  image_id: int
  height: int
  width: int
  encoded_image: bytes
  boxes: np.ndarray
  classes: np.ndarray
  instance_masks: np.ndarray
  category_mask: np.ndarray
  instance_mask: np.ndarray
  filename: str
  image_format: str = 'png'
  is_crowd: Optional[np.ndarray] = None


def _checked(example):
  name = example.filename
  size = (example.height, example.width)
  for field in ('category_mask', 'instance_mask'):
    mask = np.asarray(getattr(example, field))
    if mask.shape != size or mask.dtype != np.uint8:
      raise ValueError(f'{name}: {field} must be uint8 of shape {size}, got '
                       f'{mask.dtype} {mask.shape}')
  count = len(example.classes)
  if np.asarray(example.boxes).reshape(-1, 4).shape[0] != count:
    raise ValueError(f'{name}: {len(example.boxes)} boxes for {count} classes')
  if np.asarray(example.instance_masks).reshape(-1, *size).shape[0] != count:
    raise ValueError(f'{name}: instance_masks must be ({count}, {size[0]}, '
                     f'{size[1]}), got {np.asarray(example.instance_masks).shape}')
  return count


def to_tf_example(example):
  """The tf.train.Example of a PanopticExample.

  Raises:
    ValueError: masks of the wrong size or type, or counts that differ
      (naming the image).
  """
  count = _checked(example)
  height, width = example.height, example.width
  boxes = np.asarray(example.boxes, np.float64).reshape(-1, 4)
  masks = np.asarray(example.instance_masks).reshape(-1, height, width)
  is_crowd = (np.zeros(count, bool) if example.is_crowd is None
              else np.asarray(example.is_crowd, bool))
  feature = {
      'image/encoded': tf_example.bytes_feature([example.encoded_image]),
      'image/format': tf_example.bytes_feature([example.image_format.encode()]),
      'image/height': tf_example.int64_feature([height]),
      'image/width': tf_example.int64_feature([width]),
      'image/filename': tf_example.bytes_feature([example.filename.encode('utf8')]),
      'image/source_id': tf_example.bytes_feature([str(example.image_id).encode()]),
      'image/object/bbox/ymin': tf_example.float_feature(boxes[:, 0] / height),
      'image/object/bbox/xmin': tf_example.float_feature(boxes[:, 1] / width),
      'image/object/bbox/ymax': tf_example.float_feature(boxes[:, 2] / height),
      'image/object/bbox/xmax': tf_example.float_feature(boxes[:, 3] / width),
      'image/object/class/label': tf_example.int64_feature(
          [int(c) for c in example.classes]),
      'image/object/area': tf_example.float_feature(
          [float(np.count_nonzero(mask)) for mask in masks]),
      'image/object/is_crowd': tf_example.int64_feature([int(c) for c in is_crowd]),
      'image/object/mask': tf_example.bytes_feature(tf_example.encode_png_masks(masks)),
      'image/panoptic/category/encoded': tf_example.bytes_feature(
          [tf_example.encode_png(example.category_mask)]),
      'image/panoptic/category/format': tf_example.bytes_feature([b'png']),
      'image/panoptic/instance/encoded': tf_example.bytes_feature(
          [tf_example.encode_png(example.instance_mask)]),
      'image/panoptic/instance/format': tf_example.bytes_feature([b'png']),
  }
  return tf.train.Example(features=tf.train.Features(feature=feature))


def instances_of(category_mask, instance_mask, num_thing_classes):
  """Boxes, classes and masks of the thing segments of panoptic masks.

  Args:
    category_mask, instance_mask: int (height, width).
    num_thing_classes: T; categories 1..T are things.
  Returns:
    boxes float (N, 4) [ymin, xmin, ymax, xmax] px (max exclusive), classes
    int (N,), masks uint8 (N, height, width); in instance-id order.
  """
  category_mask = np.asarray(category_mask)
  instance_mask = np.asarray(instance_mask)
  is_thing = (category_mask >= 1) & (category_mask <= num_thing_classes)
  ids = np.unique(instance_mask[is_thing & (instance_mask > 0)])
  boxes, classes, masks = [], [], []
  for instance_id in ids:
    mask = is_thing & (instance_mask == instance_id)
    rows, cols = np.nonzero(mask)
    boxes.append([rows.min(), cols.min(), rows.max() + 1, cols.max() + 1])
    classes.append(int(np.bincount(category_mask[mask]).argmax()))
    masks.append(mask.astype(np.uint8))
  height, width = category_mask.shape
  return (np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(classes, np.int64),
          np.asarray(masks, np.uint8).reshape(-1, height, width))
