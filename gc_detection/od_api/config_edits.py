"""Edits of a pipeline's model config shared by the demo, benchmarks and tests."""


def set_square_input(model_config, size):
  """Makes the model resize every image to size x size pixels.

  Args:
    model_config: a DetectionModel proto (pipeline.model), edited in place.
      Its meta-architecture's image_resizer may be a fixed_shape_resizer or a
      keep_aspect_ratio_resizer (min = max = size, so a square image stays
      size x size).
    size: the side in pixels.
  """
  resizer = getattr(model_config, model_config.WhichOneof('model')).image_resizer
  if resizer.HasField('fixed_shape_resizer'):
    resizer.fixed_shape_resizer.height = resizer.fixed_shape_resizer.width = size
  else:
    resizer.keep_aspect_ratio_resizer.min_dimension = size
    resizer.keep_aspect_ratio_resizer.max_dimension = size
