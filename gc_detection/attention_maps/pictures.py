"""Pictures of an ImageAttention: weight grids coloured and blended over the image.

Each panel is the image as the model saw it (resized by the model's input
pipeline; the padding it adds is cropped away), with a query's
weights over the feature grid upsampled (bilinear, one feature cell =
`stride` resized pixels), coloured with a matplotlib colormap scaled from 0
to the panel's largest weight, and blended over the picture. The white circle
is the query point, the white square its feature cell, a dashed box the
detection it came from (detectors only). A panel's title gives the peak weight as a multiple
of the uniform weight 1/(H*W) and, when the resizer padded the image, the
share of the weight that fell on the image. Nothing here depends on a
framework; the functions return PNG bytes and write no file.
"""
import io
from typing import Optional, Tuple

import numpy as np

from gc_detection.attention_maps.image_attention import ImageAttention

OVERLAY_ALPHA = 0.5


def display_image(attention: ImageAttention) -> np.ndarray:
  """The original image resized to the true shape: (Hr, Wr, 3) uint8."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  height, width = attention.true_shape
  return np.asarray(Image.fromarray(attention.image).resize(
      (width, height), Image.BILINEAR))


def upsample(grid: np.ndarray, stride: int, true_shape: Tuple[int, int]) -> np.ndarray:
  """(Hf, Wf) cell values -> (Hr, Wr) resized-image pixels (bilinear, padding cropped)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  height, width = grid.shape
  full = Image.fromarray(np.asarray(grid, np.float32), mode='F').resize(
      (width * stride, height * stride), Image.BILINEAR)
  return np.asarray(full)[:true_shape[0], :true_shape[1]]


def visible_cells(attention: ImageAttention) -> Tuple[int, int]:
  """How many rows and columns of cells overlap the true (unpadded) image."""
  rows = -(-attention.true_shape[0] // attention.stride)
  columns = -(-attention.true_shape[1] // attention.stride)
  return (min(attention.feature_shape[0], rows),
          min(attention.feature_shape[1], columns))


def overlay(picture: np.ndarray, grid: np.ndarray, stride: int,
            colormap: str = 'jet', alpha: float = OVERLAY_ALPHA,
            vmax: Optional[float] = None) -> np.ndarray:
  """Blends a coloured (Hf, Wf) weight grid over an (Hr, Wr, 3) uint8 picture.

  The colours run from 0 to vmax (default: the largest value of the grid,
  padding included, so a head that looked mostly at the padding stays dark).
  Returns (Hr, Wr, 3) uint8.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  values = upsample(grid, stride, picture.shape[:2])
  top = float(vmax) if vmax else float(np.max(grid))
  normalised = np.clip(values / top, 0.0, 1.0) if top > 0 else np.zeros_like(values)
  colours = matplotlib.colormaps[colormap](normalised)[..., :3]
  blended = (1 - alpha) * picture.astype(np.float32) / 255 + alpha * colours
  return np.clip(np.round(blended * 255), 0, 255).astype(np.uint8)


def _panel_title(label, grid, attention):
  """label, the (Hf, Wf) grid's peak over uniform, and its share on the image."""
  rows, columns = visible_cells(attention)
  uniform = 1.0 / grid.size
  title = f'{label}\npeak {grid.max() / uniform:.1f}x uniform'
  if (rows, columns) != tuple(grid.shape):
    title += f', {100 * grid[:rows, :columns].sum():.0f}% on the image'
  return title


def _draw_query(axes, attention, index):
  """Marks query `index`: its point, its feature cell and its box if any."""
  from matplotlib import patches  # pylint: disable=g-import-not-at-top
  scale_y = attention.true_shape[0] / attention.image.shape[0]
  scale_x = attention.true_shape[1] / attention.image.shape[1]
  y, x = attention.query_points[index]
  row, column = attention.query_cells[index]
  stride = attention.stride
  axes.add_patch(patches.Rectangle((column * stride, row * stride), stride, stride,
                                   fill=False, edgecolor='white', linewidth=1.2))
  box = attention.query_boxes[index]
  if not np.isnan(box).any():
    height, width = attention.true_shape
    axes.add_patch(patches.Rectangle(
        (box[1] * width, box[0] * height), (box[3] - box[1]) * width,
        (box[2] - box[0]) * height, fill=False, edgecolor='white',
        linestyle='--', linewidth=1.0))
  axes.plot([x * scale_x], [y * scale_y], marker='o', markersize=7,
            markerfacecolor='white', markeredgecolor='black', linestyle='none')


def _query_label(attention, index):
  y, x = attention.query_points[index]
  row, column = attention.query_cells[index]
  label = f'query {index}: (y={y:.0f}, x={x:.0f}) px, cell ({row}, {column})'
  if not np.isnan(attention.query_scores[index]):
    label += f', detection score {attention.query_scores[index]:.2f}'
  return label


def _figure_png(panels, title, panel_width=3.2, max_columns=5):
  """PNG bytes of (picture (H, W, 3) uint8, title, draw(axes) or None) panels."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  columns = min(len(panels), max_columns)
  rows = -(-len(panels) // columns)
  height, width = panels[0][0].shape[:2]
  panel_height = panel_width * height / width
  figure = Figure(figsize=(panel_width * columns, (panel_height + 0.6) * rows + 0.5),
                  dpi=100)
  FigureCanvasAgg(figure)
  figure.suptitle(title, fontsize=9)
  for number, (picture, panel_title, draw) in enumerate(panels):
    axes = figure.add_subplot(rows, columns, number + 1)
    axes.imshow(picture, extent=(0, picture.shape[1], picture.shape[0], 0))
    if draw is not None:
      draw(axes)
    axes.set_xlim(0, picture.shape[1])
    axes.set_ylim(picture.shape[0], 0)
    axes.set_title(panel_title, fontsize=7)
    axes.axis('off')
  figure.tight_layout()
  buffer = io.BytesIO()
  figure.savefig(buffer, format='png', bbox_inches='tight', pad_inches=0.1)
  return buffer.getvalue()


def render_query_png(attention: ImageAttention, index: int,
                     colormap: str = 'jet') -> bytes:
  """PNG of query `index`: the mean over heads, then every head."""
  picture = display_image(attention)
  weights = attention.weights[index]  # (heads, Hf, Wf)
  grids = [(f'mean of {len(weights)} heads', weights.mean(axis=0))]
  grids += [(f'head {head}', grid) for head, grid in enumerate(weights)]
  draw = lambda axes: _draw_query(axes, attention, index)
  panels = [(overlay(picture, grid, attention.stride, colormap),
             _panel_title(label, grid, attention), draw) for label, grid in grids]
  return _figure_png(panels, f'{attention.name}, layer {attention.layer_index}, '
                     + _query_label(attention, index))


def render_grid_png(attention: ImageAttention, colormap: str = 'jet') -> bytes:
  """PNG with one panel per query (mean over heads)."""
  picture = display_image(attention)
  panels = []
  for index in range(len(attention.weights)):
    grid = attention.weights[index].mean(axis=0)
    draw = lambda axes, index=index: _draw_query(axes, attention, index)
    panels.append((overlay(picture, grid, attention.stride, colormap),
                   _panel_title(_query_label(attention, index).replace(': ', ':\n', 1),
                                grid, attention), draw))
  return _figure_png(panels, f'{attention.name}: attention of each query (mean '
                     f'over heads), layer {attention.layer_index}', max_columns=4)
