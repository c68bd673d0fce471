"""Which key cells a query cell of the module's feature map reads, with what weight.

In stacked layer l, head h, a query cell q gives each key cell k the weight

    w_h[q, k] = softmax_k( (x_q Wq_h + bq_h) . (x_k Wk_h + bk_h) / sqrt(d) )

(the weights over all H*W keys sum to 1). The layer computes them itself
(`return_attention_scores=True`). This module holds what every framework's
attention maps share: the per-image record (ImageAttention), image points to
feature cells, and each query's row of the weights. Each adapter finds the
map the layer refines in its own models (gc_detection.od_api.attention_weights,
gc_detection.model_garden.attention_model).
"""
import dataclasses
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np

from gc_detection import user_errors


class AttentionMapError(user_errors.UserError, ValueError):
  """Bad input (a flag, a file, a model or a checkpoint); says which."""


@dataclasses.dataclass
class ImageAttention:
  """The attention of the queries of one image, with what is needed to draw it.

  Shapes: Q queries, heads = the layer's num_heads, (Hf, Wf) the feature grid.

  Attributes:
    name: output file stem.
    image: (H0, W0, 3) uint8, the original image.
    true_shape: (Hr, Wr), the resized image inside the model's padded input.
    padded_shape: (Hp, Wp), the model's input (resized, maybe padded).
    feature_shape: (Hf, Wf).
    stride: resized pixels per feature cell.
    layer_index: the stacked attention layer shown (0: the first).
    weights: (Q, heads, Hf, Wf) float32, each query's weights over every key
      cell of the full (padded) grid; each (Hf, Wf) slice sums to 1 (over
      the image's own cells, zero on padding, when the model ignores it).
    query_points: (Q, 2) float32 (y, x) in original-image pixels.
    query_cells: (Q, 2) int32 (row, column) feature cells.
    query_boxes: (Q, 4) float32 normalised [ymin, xmin, ymax, xmax] of the
      detection a query came from; NaN for user points.
    query_scores: (Q,) float32 detection scores; NaN for user points.
  """
  name: str
  image: np.ndarray
  true_shape: Tuple[int, int]
  padded_shape: Tuple[int, int]
  feature_shape: Tuple[int, int]
  stride: int
  layer_index: int
  weights: np.ndarray
  query_points: np.ndarray
  query_cells: np.ndarray
  query_boxes: np.ndarray
  query_scores: np.ndarray


def parse_points(text: Optional[str]) -> List[Tuple[float, float]]:
  """'y,x;y,x' -> [(y, x), ...]; None or '' -> []."""
  if not text or not text.strip():
    return []
  points = []
  for part in text.split(';'):
    if not part.strip():
      continue
    try:
      y, x = (float(value) for value in part.split(','))
    except ValueError:
      raise AttentionMapError(
          f'--points={text}: {part.strip()!r} is not "y,x" (two numbers, '
          'pixels of the original image); separate points with ";"') from None
    if not (math.isfinite(y) and math.isfinite(x)):
      raise AttentionMapError(f'--points={text}: {part.strip()!r} is not finite')
    points.append((y, x))
  return points


def check_layer_index(layer, layer_index: int):
  """Raises AttentionMapError unless the layer has stacked layer `layer_index`."""
  if not 0 <= layer_index < layer.num_layers:
    raise AttentionMapError(
        f'--layer_index={layer_index}: the module has {layer.num_layers} stacked '
        f'layer(s); use 0..{layer.num_layers - 1}')


def attention_matrix(layer, features, layer_index: int = 0,
                     valid_shape=None) -> np.ndarray:
  """The weights of stacked layer `layer_index`: (1, Hf, Wf, C) -> (heads, HW, HW).

  Queries on axis 1, keys on axis 2, both in row-major (Hf, Wf) order; float32.
  valid_shape: None, or (1, 2) valid rows and columns of cells for a model
    that ignores padding (its weights are zero on padded cells).
  """
  check_layer_index(layer, layer_index)
  _, scores = layer(features, training=False, return_attention_scores=True,
                    valid_shape=valid_shape)
  return scores[layer_index][0].numpy()


def point_to_cell(point: Tuple[float, float], image_shape: Tuple[int, int],
                  true_shape: Tuple[int, int], stride: int,
                  feature_shape: Tuple[int, int]) -> Tuple[int, int]:
  """Original-image pixel (y, x) -> feature cell (row, column).

  The resizer maps the original (H0, W0) onto the top-left (Hr, Wr) of the
  model's input; cell (r, c) covers resized pixels [r*stride, (r+1)*stride) x
  [c*stride, (c+1)*stride).

  Raises:
    AttentionMapError: the point is outside [0, H0) x [0, W0).
  """
  y, x = point
  height, width = image_shape
  if not (0 <= y < height and 0 <= x < width):
    raise AttentionMapError(
        f'--points: ({y:g}, {x:g}) is outside the {height}x{width} image '
        f'(y must be in [0, {height}), x in [0, {width}); points are y,x)')
  resized_y = y * true_shape[0] / height
  resized_x = x * true_shape[1] / width
  row = min(int(resized_y // stride), feature_shape[0] - 1)
  column = min(int(resized_x // stride), feature_shape[1] - 1)
  return row, column


def attention_for_queries(matrix: np.ndarray, cells: Sequence[Tuple[int, int]],
                          feature_shape: Tuple[int, int]) -> np.ndarray:
  """Each query cell's row of the attention: (heads, HW, HW) -> (Q, heads, Hf, Wf)."""
  heads = matrix.shape[0]
  height, width = feature_shape
  if matrix.shape[1:] != (height * width, height * width):
    raise ValueError(f'attention matrix {matrix.shape} does not match the '
                     f'{height}x{width} feature grid')
  rows = [matrix[:, row * width + column, :] for row, column in cells]
  if not rows:
    return np.zeros((0, heads, height, width), np.float32)
  return np.stack(rows).reshape(len(rows), heads, height, width)


