"""Writes semantic-segmentation examples in TF Model Garden's tf.Example schema.

The keys are the ones `official.vision.dataloaders.segmentation_input.Decoder`
reads: the encoded image with its height and width, and the label map as a
single-channel PNG under `image/segmentation/class/encoded` (one uint8 class
id per pixel; the experiment's `ignore_label`, 255 by default, for unlabelled
pixels).
"""
import numpy as np
import tensorflow as tf

from gc_detection import atomic_files
from gc_detection.data import tf_example


def segmentation_example(labels, source_id, image=None, encoded_image=None,
                         image_format='png', filename=None):
  """The tf.train.Example of one image and its label map.

  Args:
    labels: uint8 array (height, width), the class id of every pixel.
    source_id: str stored as image/source_id (and image/filename unless
      filename is given).
    image: uint8 (height, width, 3), stored as PNG; or None with
      encoded_image: the image file's bytes (stored unchanged) in image_format.

  Raises:
    ValueError: the label map is not uint8 (height, width) of the image's size.
  """
  labels = np.asarray(labels)
  if image is not None:
    image = np.asarray(image)
    encoded_image = tf_example.encode_png(image)
    image_format = 'png'
    height, width = image.shape[:2]
  else:
    height, width = labels.shape[:2]
  if labels.dtype != np.uint8 or labels.shape != (height, width):
    raise ValueError(f'{source_id}: labels must be uint8 of shape {(height, width)}, '
                     f'got {labels.dtype} {labels.shape}')
  name = source_id.encode('utf8')
  filename = name if filename is None else filename.encode('utf8')
  feature = {
      'image/encoded': tf_example.bytes_feature([encoded_image]),
      'image/format': tf_example.bytes_feature([image_format.encode()]),
      'image/height': tf_example.int64_feature([height]),
      'image/width': tf_example.int64_feature([width]),
      'image/filename': tf_example.bytes_feature([filename]),
      'image/source_id': tf_example.bytes_feature([name]),
      'image/segmentation/class/encoded': tf_example.bytes_feature(
          [tf_example.encode_png(labels)]),
      'image/segmentation/class/format': tf_example.bytes_feature([b'png']),
  }
  return tf.train.Example(features=tf.train.Features(feature=feature))


def write_records(path, examples):
  """Writes tf.train.Examples to one TFRecord file atomically; returns the count."""
  count = 0

  def write(temporary):
    nonlocal count
    with tf.io.TFRecordWriter(temporary) as writer:
      for example in examples:
        writer.write(example.SerializeToString())
        count += 1
  atomic_files.write_atomically(path, write)
  return count
