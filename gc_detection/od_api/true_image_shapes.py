"""Each image's true shape, from the OD API's predict to the GC module.

The OD API's Faster R-CNN and SSD models receive `true_image_shapes` (N, 3)
in `predict(preprocessed_inputs, true_image_shapes)` -- on the trainer's, the
evaluator's and the exporter's paths alike -- but hand only the padded images
to their feature extractor. For a GC model whose settings ignore padding,
the model-builder hook calls `pass_to_module(model)` on the built model: its
`predict` (this instance's, not the class's; stock models are untouched)
then runs inside gc_detection.layers.true_image_sizes.scope(true_image_shapes),
where the extractor's TrueSizeGlobalContextAttention reads them. A predict
given no shapes (the TFLite exporter's fixed-size inputs) attends to the
whole map.
"""
import functools
import weakref

from gc_detection.layers import true_image_sizes


def pass_to_module(model):
  """Makes `model.predict` publish its true_image_shapes while it runs.

  Args:
    model: an OD API DetectionModel (Faster R-CNN or SSD) with a GC extractor.
  """
  # The class's function and a weak reference: the wrapper, stored on the
  # model, must not hold the model (a reference cycle through TensorFlow
  # objects is left to the cyclic garbage collector).
  predict = type(model).predict
  model_ref = weakref.ref(model)

  @functools.wraps(predict)
  def predict_with_true_shapes(preprocessed_inputs, true_image_shapes=None, **kwargs):
    with true_image_sizes.scope(true_image_shapes):
      return predict(model_ref(), preprocessed_inputs, true_image_shapes, **kwargs)

  # object.__setattr__: an instance attribute Keras' tracking need not see.
  object.__setattr__(model, 'predict', predict_with_true_shapes)
