"""Each image's true size, from Model Garden's steps to the GC module.

official.vision pads every image to the model's input size; its parsers and
serving modules record the resize in `image_info` (N, 4, 2): original size,
output (canvas) size, scale and crop offset. Its backbones get only the
images, and its detectors' `image_shape` argument is the canvas size. With
`ignore_padding` (the default), the resnet_gc module is a
gc_detection.layers.true_image_sizes.TrueSizeGlobalContextAttention, and:

- the TrueImageSizes Task mixin runs train_step and validation_step inside
  `scope(valid_image_sizes(labels['image_info']))` (every official.vision
  task's labels have image_info): training and evaluation;
- gc_detection's Panoptic FPN serving module does the same around its model
  call (gc_detection.model_garden.panoptic_export).

official.vision's own serving modules (RetinaNet, Mask R-CNN, semantic
segmentation SavedModels from its export_saved_model) do not publish the
sizes: their SavedModels attend to the whole padded canvas.
"""
import tensorflow as tf

from gc_detection.layers import true_image_sizes


def valid_image_sizes(image_info):
  """(N, 2) float32: the rows and columns of each canvas its image fills.

  Args:
    image_info: (N, 4, 2) [original size, canvas size, scale, offset], as
      official.vision's preprocess_ops.resize_and_crop_image returns it.
  """
  image_info = tf.cast(image_info, tf.float32)
  scaled = tf.round(image_info[:, 0, :] * image_info[:, 2, :]) - image_info[:, 3, :]
  return tf.clip_by_value(scaled, 0.0, image_info[:, 1, :])


def ignores_padding(model):
  """True when the model's backbone is a resnet_gc whose settings ignore padding."""
  settings = getattr(getattr(model, 'backbone', None), 'global_context_settings', None)
  return bool(settings is not None and settings.ignore_padding)


def scope_of(model, image_info):
  """true_image_sizes.scope of the images' sizes for a model that ignores
  padding; an empty scope for any other."""
  return true_image_sizes.scope(valid_image_sizes(image_info) if ignores_padding(model)
                                else None)


class TrueImageSizes:
  """official.vision Task mixin (before the stock task class in the bases)."""

  def train_step(self, inputs, model, optimizer, metrics=None):
    with scope_of(model, inputs[1]['image_info']):
      return super().train_step(inputs, model, optimizer, metrics=metrics)

  def validation_step(self, inputs, model, metrics=None):
    with scope_of(model, inputs[1]['image_info']):
      return super().validation_step(inputs, model, metrics=metrics)
