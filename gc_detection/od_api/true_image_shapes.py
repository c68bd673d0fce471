"""Each image's true shape, from the OD API's predict to the GC module.

The OD API's Faster R-CNN and SSD models receive `true_image_shapes` (N, 3)
in `predict(preprocessed_inputs, true_image_shapes)` -- on the trainer's, the
evaluator's and the exporter's paths alike -- but hand only the padded images
to their feature extractor. For a GC model whose settings ignore padding,
the model-builder hook calls `pass_to_module(model)` on the built model: its
`predict` (this instance's, not the class's; stock models are untouched)
then holds the shapes in a context variable for as long as it runs, and the
extractor's TrueShapesGlobalContextAttention reads them there and calls the
layer with each image's valid cells. A predict given no shapes (the TFLite
exporter's fixed-size inputs) attends to the whole map.

The variable is per thread (a replica of a distribution strategy runs its
own predict), and set and read while the step's function is traced, so it
holds a tensor of the graph being built.
"""
import contextvars
import functools

import tensorflow as tf

from gc_detection.layers import GlobalContextAttention
from gc_detection.layers import valid_region

_TRUE_IMAGE_SHAPES = contextvars.ContextVar('gc_detection_true_image_shapes',
                                            default=None)


def current():
  """The (N, 3) true_image_shapes of the predict in progress, or None."""
  return _TRUE_IMAGE_SHAPES.get()


def pass_to_module(model):
  """Makes `model.predict` publish its true_image_shapes while it runs.

  Args:
    model: an OD API DetectionModel (Faster R-CNN or SSD) with a GC extractor.
  """
  predict = model.predict

  @functools.wraps(predict)
  def predict_with_true_shapes(preprocessed_inputs, true_image_shapes=None, **kwargs):
    token = _TRUE_IMAGE_SHAPES.set(true_image_shapes)
    try:
      return predict(preprocessed_inputs, true_image_shapes, **kwargs)
    finally:
      _TRUE_IMAGE_SHAPES.reset(token)

  # object.__setattr__: an instance attribute Keras' tracking need not see.
  object.__setattr__(model, 'predict', predict_with_true_shapes)


@tf.keras.utils.register_keras_serializable(package='gc_detection')
class TrueShapesGlobalContextAttention(GlobalContextAttention):
  """GlobalContextAttention that, called inside a model's predict, attends
  only within each image's true shape.

  Input (N, H, W, C) at `stride` resized-image pixels per cell; image n's
  valid cells are the top-left ceil(true_image_shapes[n, :2] / stride).
  An explicit `valid_shape` wins; outside a predict (or when it got no
  shapes) the whole map is attended.
  """

  def __init__(self, stride, **kwargs):
    super().__init__(**kwargs)
    self.stride = int(stride)

  def call(self, inputs, training=None, return_attention_scores=False,
           valid_shape=None):
    if valid_shape is None and current() is not None:
      valid_shape = valid_region.cells_of(current()[:, :2], self.stride)
    return super().call(inputs, training=training,
                        return_attention_scores=return_attention_scores,
                        valid_shape=valid_shape)

  def get_config(self):
    return dict(super().get_config(), stride=self.stride)
