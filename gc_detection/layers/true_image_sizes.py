"""Each image's true size in the batch being run, for the module deep in a model.

Frameworks hand their backbones only the padded images; the sizes travel
beside them (the OD API's `true_image_shapes`, Model Garden's `image_info`).
An adapter that has them runs the model inside `scope(sizes)`, and a
TrueSizeGlobalContextAttention in the backbone reads them there and attends
within each image's own cells. Outside a scope it attends to the whole map.

The variable is per thread (each replica of a distribution strategy runs its
own step) and is read while the step's function is traced, so it holds a
tensor of the graph being built. Pure TensorFlow / Keras.
"""
import contextlib
import contextvars

import tensorflow as tf

from gc_detection.layers import valid_region
from gc_detection.layers.global_context_attention import GlobalContextAttention

_IMAGE_SIZES = contextvars.ContextVar('gc_detection_true_image_sizes', default=None)


@contextlib.contextmanager
def scope(image_sizes):
  """Publishes (N, 2+) true image sizes (height, width first, in input pixels;
  more columns are ignored) while the block runs; None publishes nothing."""
  token = _IMAGE_SIZES.set(image_sizes)
  try:
    yield
  finally:
    _IMAGE_SIZES.reset(token)


def current():
  """The (N, 2+) sizes of the innermost scope, or None."""
  return _IMAGE_SIZES.get()


@tf.keras.utils.register_keras_serializable(package='gc_detection')
class TrueSizeGlobalContextAttention(GlobalContextAttention):
  """GlobalContextAttention that, inside `scope(sizes)`, attends only within
  each image's true size.

  Input (N, H, W, C) at `stride` input pixels per cell; image n's valid
  cells are the top-left ceil(sizes[n, :2] / stride). An explicit
  `valid_shape` wins; outside a scope the whole map is attended.
  """

  def __init__(self, stride, **kwargs):
    super().__init__(**kwargs)
    self.stride = int(stride)

  def call(self, inputs, training=None, return_attention_scores=False,
           valid_shape=None):
    sizes = current()
    if valid_shape is None and sizes is not None:
      valid_shape = valid_region.cells_of(tf.math.ceil(tf.cast(sizes[:, :2], tf.float32)),
                                          self.stride)
    return super().call(inputs, training=training,
                        return_attention_scores=return_attention_scores,
                        valid_shape=valid_shape)

  def get_config(self):
    return dict(super().get_config(), stride=self.stride)
