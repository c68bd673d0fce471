"""The attention of an OD API GC detector's queries (gc_detection.attention_maps).

This module finds the map the layer refines in a restored detection model
(attention_model.LoadedModel), and adds the detector's own queries: the
centres of its best detections. gc_detection.attention_maps.image_attention
has the rest (the record, points to cells, each query's row of the weights).
"""
from typing import Sequence, Tuple

import numpy as np

from gc_detection.attention_maps import image_attention
from gc_detection.attention_maps.image_attention import AttentionMapError
from gc_detection.attention_maps.image_attention import ImageAttention
from gc_detection.layers import valid_region


def preprocess(loaded, image: np.ndarray):
  """(H0, W0, 3) uint8 -> ((1, Hp, Wp, 3) float32 tensor, (1, 3) int32 true shapes)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return loaded.model.preprocess(tf.constant(image[None], tf.float32))


def module_input(loaded, preprocessed):
  """The map the GC layer refines: (1, Hp, Wp, 3) -> (1, Hf, Wf, C) tensor.

  As the extractor computes it (global_context_input): C is its
  GLOBAL_CONTEXT_CHANNELS, Hf = Hp / stride (after any padding it applies).
  """
  return loaded.extractor.global_context_input(preprocessed)


def top_detection_queries(loaded, preprocessed, true_shapes,
                          image_shape: Tuple[int, int], count: int):
  """The centres of the `count` best detections of the full model.

  Args:
    preprocessed, true_shapes: preprocess()'s (1, Hp, Wp, 3) and (1, 3).
    image_shape: (H0, W0) of the original image.

  Returns:
    points (K, 2) float32 (y, x) original pixels, boxes (K, 4) float32
    normalised to the true image, scores (K,) float32; K <= count.
  """
  model = loaded.model
  detections = model.postprocess(model.predict(preprocessed, true_shapes),
                                 true_shapes)
  number = int(detections['num_detections'][0])
  scores = detections['detection_scores'][0, :number].numpy()
  boxes = detections['detection_boxes'][0, :number].numpy()
  order = np.argsort(-scores, kind='stable')[:count]
  boxes, scores = boxes[order].astype(np.float32), scores[order].astype(np.float32)
  height, width = image_shape
  centre_y = (boxes[:, 0] + boxes[:, 2]) / 2 * height
  centre_x = (boxes[:, 1] + boxes[:, 3]) / 2 * width
  points = np.stack([np.clip(centre_y, 0, np.nextafter(height, 0)),
                     np.clip(centre_x, 0, np.nextafter(width, 0))], axis=-1)
  return points.astype(np.float32).reshape(-1, 2), boxes.reshape(-1, 4), scores


def _queries(loaded, preprocessed, true_shapes, image_shape, points, top_detections):
  """(Q, 2) points, (Q, 4) boxes, (Q,) scores: the user's points (NaN box and
  score), then the top detections' centres."""
  query_points = np.asarray(points, np.float32).reshape(-1, 2)
  boxes = np.full((len(query_points), 4), np.nan, np.float32)
  scores = np.full((len(query_points),), np.nan, np.float32)
  if top_detections > 0:
    detected, detected_boxes, detected_scores = top_detection_queries(
        loaded, preprocessed, true_shapes, image_shape, top_detections)
    query_points = np.concatenate([query_points, detected])
    boxes = np.concatenate([boxes, detected_boxes])
    scores = np.concatenate([scores, detected_scores])
  return query_points, boxes, scores


def compute_image_attention(loaded, image: np.ndarray, name: str,
                            points: Sequence[Tuple[float, float]] = (),
                            top_detections: int = 0,
                            layer_index: int = 0) -> ImageAttention:
  """Everything the pictures of one (H0, W0, 3) uint8 image need.

  Args:
    loaded: an attention_model.LoadedModel.
    name: the output file stem.
    points: (y, x) queries in original-image pixels.
    top_detections: also query the centres of this many best detections.
    layer_index: the stacked attention layer to read.
  """
  if not points and top_detections <= 0:
    raise AttentionMapError('no queries: give --points and/or --top_detections')
  preprocessed, true_shapes = preprocess(loaded, image)
  image_shape = image.shape[:2]
  true_shape = tuple(int(v) for v in true_shapes[0, :2].numpy())
  features = module_input(loaded, preprocessed)
  feature_shape = tuple(int(v) for v in features.shape[1:3])
  query_points, boxes, scores = _queries(loaded, preprocessed, true_shapes,
                                         image_shape, points, top_detections)
  cells = [image_attention.point_to_cell(point, image_shape, true_shape, loaded.stride, feature_shape)
           for point in query_points]
  valid_shape = None
  if loaded.extractor.gc_settings.ignore_padding:
    valid_shape = valid_region.cells_of(true_shapes[:, :2], loaded.stride)
  matrix = image_attention.attention_matrix(loaded.layer, features, layer_index,
                                            valid_shape)
  return ImageAttention(
      name=name, image=image, true_shape=true_shape,
      padded_shape=tuple(int(v) for v in preprocessed.shape[1:3]),
      feature_shape=feature_shape, stride=loaded.stride, layer_index=layer_index,
      weights=image_attention.attention_for_queries(matrix, cells, feature_shape),
      query_points=query_points,
      query_cells=np.asarray(cells, np.int32).reshape(-1, 2),
      query_boxes=boxes, query_scores=scores)


# The shared names, for callers of the OD API's attention maps.
parse_points = image_attention.parse_points
check_layer_index = image_attention.check_layer_index
attention_matrix = image_attention.attention_matrix
point_to_cell = image_attention.point_to_cell
