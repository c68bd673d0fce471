"""Each image's valid region in a padded batch of feature maps.

Detectors pad every image of a batch to one canvas, at the bottom and on the
right (the OD API's `pad_to_max_dimension`, Model Garden's `image_info`). An
image's valid region is then the top-left block of cells its own pixels
reach: `valid_shape` (N, 2) int, its rows and columns of cells. Pure
TensorFlow.
"""
import tensorflow as tf
from tensorflow.python.ops import control_flow_util


def in_xla_context():
  """True while tracing a function XLA compiles (jit_compile=True, TPUs).

  There shapes must stay static: the valid region is masked, not cropped.
  """
  return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def cells_of(image_sizes, stride):
  """Cells a feature map of `stride` has over images of the given sizes.

  Args:
    image_sizes: (N, 2) int, valid height and width in input pixels.
    stride: input pixels per cell.
  Returns:
    int32 (N, 2): ceil(size / stride), the cells that see any image pixel
    (a stride-s ResNet stage with SAME padding has ceil(H / s) rows).
  """
  image_sizes = tf.cast(image_sizes, tf.int32)
  return (image_sizes + (stride - 1)) // stride


def clipped(valid_shape, height, width):
  """int32 (N, 2) valid_shape, each row clipped to [0, height] x [0, width].

  A region larger than the map (rounding of image sizes) means all of it.
  """
  valid_shape = tf.cast(valid_shape, tf.int32)
  return tf.clip_by_value(valid_shape, 0, tf.stack([height, width]))


def token_mask(valid_shape, height, width):
  """bool (N, H*W), row-major: cell (i, j) of image n is valid iff
  i < valid_shape[n, 0] and j < valid_shape[n, 1]."""
  rows = tf.range(height)[tf.newaxis, :, tf.newaxis] < valid_shape[:, 0, tf.newaxis,
                                                                    tf.newaxis]
  columns = tf.range(width)[tf.newaxis, tf.newaxis, :] < valid_shape[:, 1, tf.newaxis,
                                                                     tf.newaxis]
  return tf.reshape(tf.logical_and(rows, columns), [tf.shape(valid_shape)[0], -1])


def batch_extent(valid_shape):
  """(rows, columns): the smallest top-left block holding every image's region."""
  extent = tf.reduce_max(valid_shape, axis=0)
  return extent[0], extent[1]


def put_back(region, maps, rows, columns):
  """maps (N, H, W, C) with its top-left (rows, columns) block replaced by
  region (N, rows, columns, C); exact (no arithmetic on either)."""
  top = tf.concat([region, maps[:, :rows, columns:]], axis=2)
  return tf.concat([top, maps[:, rows:]], axis=1)


def on_full_grid(weights, region_shape, full_shape):
  """Attention weights of a region, placed on the full map's grid.

  Args:
    weights: (N, h, r*c, r*c), queries and keys row-major over the region.
    region_shape: (r, c), the region's rows and columns (the top-left block).
    full_shape: (H, W).
  Returns:
    (N, h, H*W, H*W), zero for every query or key outside the region.
  """
  rows, columns = region_shape
  height, width = full_shape
  batch, heads = tf.shape(weights)[0], tf.shape(weights)[1]
  grid = tf.reshape(weights, [batch, heads, rows, columns, rows, columns])
  grid = tf.pad(grid, [[0, 0], [0, 0], [0, height - rows], [0, width - columns],
                       [0, height - rows], [0, width - columns]])
  return tf.reshape(grid, [batch, heads, height * width, height * width])
