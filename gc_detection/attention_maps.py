r"""Attention maps of the global-context module: which context a cell read.

Why look. The paper's Fig. 1 (Lee, Kim, Jung, Electronics 2021) motivates the
module with a yellow disk: in a sky it is the sun, on a plate it is an egg
yolk. The disk's own pixels are the same in both pictures; only regions far
outside a convolution's receptive field tell the two apart. The module lets
every cell of the backbone map read every other cell: in block b, head h, a
query cell q gives each key cell k the weight

    w_h[q, k] = softmax_k( (x_q Wq_h + bq_h) . (x_k Wk_h + bk_h) / sqrt(d) )

(the weights over all H*W keys sum to 1), and q's refined feature is the
w-weighted sum of the keys' values. This tool draws w_h[q, :] over the image:
the bright regions are where the module took q's context from - for the yolk,
ideally the plate around it and the cutlery beside it, not the disk itself.

What the pictures show. For each query (an image point given with --points,
or the centre of one of the --top_detections highest-scoring detections of the
full model), one PNG `<image>_q<NN>.png`: the first panel is the mean over the
heads, then one panel per head. Each panel is the image as the model saw it
(resized by the pipeline's image_resizer; the padding the resizer adds is
cropped away), with the query's weights over the feature grid upsampled
(bilinear, one feature cell = `stride` resized pixels: 16 for Faster R-CNN's
C4, 32 for RetinaNet's C5), coloured with a matplotlib colormap scaled from 0
to the panel's largest weight, and blended over the picture. The white circle
is the query point, the white square its feature cell (a detection's box is
drawn dashed). Each panel's title gives the peak weight as a multiple of the
uniform weight 1/(H*W) (1.0x: the head spread its attention evenly), and,
when the resizer padded the image, the share of the weight that fell on the
image: cells of the padding are keys like any other to the module, and weight
there is not drawn (a head that read mostly padding stays dark).
`<image>_grid.png` has one panel per query (mean over heads) side by side.
The colour scale is relative per panel; compare panels by their titles.

With --save_arrays, `<image>_attention.npz` holds the raw weights (before any
colouring or cropping, over the full, padded feature grid), the query cells
and points; with --tensorboard_dir the same pictures go to TensorBoard as
image summaries.

Usage:
  python -m gc_detection.attention_maps \
      --pipeline_config_path=models/frcnn_r50_gc/pipeline.config \
      --checkpoint=models/frcnn_r50_gc \
      --images=photos/breakfast.jpg,photos/sunset.jpg --output_dir=attention \
      [--points='120,340;400,90'] [--top_detections=3] [--block=0] \
      [--tensorboard_dir=attention/tb] [--save_arrays] [--colormap=jet]

Cost: the layer's full (heads, H*W, H*W) weight matrix is computed once per
image, e.g. 4 x 4096^2 float32 = 268 MB for a 1024 x 1024 Faster R-CNN input.

Points are `y,x` in pixels of the original image (row, column; the image
spans [0, height) x [0, width)), separated by `;`; every point is used on
every image. --checkpoint is a checkpoint prefix (`.../ckpt-12`) or a
directory (its latest checkpoint).
"""
import dataclasses
import io
import math
import os
import re
import sys
from typing import List, NamedTuple, Optional, Sequence, Tuple

from absl import app
from absl import flags
import numpy as np

from gc_detection import atomic_files
from gc_detection.data import image_files

def _define_flags():
  """Defines the command-line flags; only when run as a program, so that
  importing this module next to other gc_detection tools cannot clash in
  absl's global flag registry."""
  global _PIPELINE_CONFIG_PATH, _CHECKPOINT, _IMAGES, _OUTPUT_DIR, _POINTS, _TOP_DETECTIONS, _BLOCK, _TENSORBOARD_DIR, _SAVE_ARRAYS, _COLORMAP  # pylint: disable=global-statement
  _PIPELINE_CONFIG_PATH = flags.DEFINE_string(
      'pipeline_config_path', None, 'pipeline.config of the trained GC model.')
  _CHECKPOINT = flags.DEFINE_string(
      'checkpoint', None, 'Checkpoint prefix (e.g. model_dir/ckpt-12) or a '
      'directory whose latest checkpoint is used.')
  _IMAGES = flags.DEFINE_list(
      'images', None, 'Comma-separated image files, directories (every '
      '.jpg/.jpeg/.png/.bmp in them) or glob patterns.')
  _OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Where the PNGs go.')
  _POINTS = flags.DEFINE_string(
      'points', None, 'Query points "y,x;y,x" in original-image pixels, used on '
      'every image.')
  _TOP_DETECTIONS = flags.DEFINE_integer(
      'top_detections', 0, 'Also query the box centres of the K highest-scoring '
      'detections of each image.')
  _BLOCK = flags.DEFINE_integer(
      'block', 0, 'Which stacked attention block to show (0 = the first).')
  _TENSORBOARD_DIR = flags.DEFINE_string(
      'tensorboard_dir', None, 'Also write the pictures as image summaries here.')
  _SAVE_ARRAYS = flags.DEFINE_bool(
      'save_arrays', False, 'Also write <image>_attention.npz with the raw '
      'weights and the query cells.')
  _COLORMAP = flags.DEFINE_string('colormap', 'jet', 'matplotlib colormap name.')

# Stride of the map the module refines: Faster R-CNN's C4, RetinaNet's C5.
SSD_C5_STRIDE = 32
OVERLAY_ALPHA = 0.5
_GC_VARIABLE_KEY = re.compile(
    r'(?:^|/)(block_\d+)\.S(qkv_kernel|qkv_bias|output_kernel|output_bias)'
    r'/\.ATTRIBUTES/VARIABLE_VALUE$')


class AttentionMapError(ValueError):
  """Bad input (a flag, a file, a model or a checkpoint); says which."""


@dataclasses.dataclass(frozen=True)
class LoadedModel:
  """A restored GC detection model and how to reach its module.

  Attributes:
    model: the OD API DetectionModel (built, restored).
    meta_architecture: 'faster_rcnn' or 'ssd'.
    layer: its GlobalContextAttention.
    stride: resized-image pixels per cell of the map the layer refines.
    checkpoint_path: the checkpoint prefix that was restored.
  """
  model: object
  meta_architecture: str
  layer: object
  stride: int
  checkpoint_path: str


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
    block: the attention block shown.
    weights: (Q, heads, Hf, Wf) float32, each query's weights over every key
      cell of the full (padded) grid; each (Hf, Wf) slice sums to 1.
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
  block: int
  weights: np.ndarray
  query_points: np.ndarray
  query_cells: np.ndarray
  query_boxes: np.ndarray
  query_scores: np.ndarray


# ------------------------------------------------------------------ inputs --


def parse_points(text: Optional[str]) -> List[Tuple[float, float]]:
  """'y,x;y,x' -> [(y, x), ...]; None or '' -> []."""
  if not text or not text.strip():
    return []
  points = []
  for part in text.split(';'):
    if not part.strip():
      continue
    values = part.split(',')
    try:
      y, x = (float(value) for value in values)
    except ValueError:
      raise AttentionMapError(
          f'--points={text}: {part.strip()!r} is not "y,x" (two numbers, '
          'pixels of the original image); separate points with ";"') from None
    if not (math.isfinite(y) and math.isfinite(x)):
      raise AttentionMapError(f'--points={text}: {part.strip()!r} is not finite')
    points.append((y, x))
  return points


def expand_image_paths(specs: Sequence[str]) -> List[str]:
  """Files, directories and globs (image_files.expand_images) -> image files."""
  try:
    return image_files.expand_images(specs)
  except image_files.NoImagesError as error:
    raise AttentionMapError(str(error)) from error


def load_image(path: str) -> np.ndarray:
  """Reads an image file as (H, W, 3) uint8 RGB (EXIF rotation applied)."""
  try:
    return image_files.load_image(path)
  except image_files.ImageError as error:
    raise AttentionMapError(f'--images: cannot read {path}: {error}') from error


# ------------------------------------------------------------------- model --


def resolve_checkpoint(checkpoint: str) -> str:
  """A checkpoint prefix, or a directory -> its latest checkpoint prefix."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if not checkpoint:
    raise AttentionMapError('--checkpoint: required (a prefix such as '
                            'model_dir/ckpt-12, or a model_dir)')
  if os.path.isdir(checkpoint):
    latest = tf.train.latest_checkpoint(checkpoint)
    if latest is None:
      raise AttentionMapError(f'--checkpoint={checkpoint}: the directory holds '
                              'no checkpoint (no "checkpoint" index file)')
    return latest
  if not os.path.isfile(checkpoint + '.index'):
    raise AttentionMapError(f'--checkpoint={checkpoint}: no such checkpoint '
                            f'({checkpoint}.index does not exist)')
  return checkpoint


def read_configs(pipeline_config_path: str):
  """Parses pipeline.config; checks its model is a GC type. Returns configs."""
  import gc_detection  # pylint: disable=g-import-not-at-top
  gc_detection.register()
  from gc_detection import registry  # pylint: disable=g-import-not-at-top
  from object_detection.utils import config_util  # pylint: disable=g-import-not-at-top
  if not pipeline_config_path or not os.path.isfile(pipeline_config_path):
    raise AttentionMapError(f'--pipeline_config_path={pipeline_config_path}: '
                            'no such file')
  try:
    configs = config_util.get_configs_from_pipeline_file(pipeline_config_path)
  except Exception as error:  # pylint: disable=broad-except
    raise AttentionMapError(f'--pipeline_config_path={pipeline_config_path}: '
                            f'cannot parse: {error}') from error
  meta_architecture = configs['model'].WhichOneof('model')
  message = getattr(configs['model'], meta_architecture or '', None)
  extractor_type = getattr(getattr(message, 'feature_extractor', None), 'type', None)
  if extractor_type not in registry.gc_types():
    raise AttentionMapError(
        f'--pipeline_config_path={pipeline_config_path}: the model '
        f'({meta_architecture}, feature_extractor type {extractor_type!r}) has '
        'no global-context module, so there is no attention to show; use a '
        f'config with one of {", ".join(registry.gc_types())}')
  return configs


def _build(configs):
  """Builds the model (inference) and runs it once so every variable exists."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from object_detection.builders import model_builder  # pylint: disable=g-import-not-at-top
  model = model_builder.build(configs['model'], is_training=False)
  model.predict(*model.preprocess(tf.zeros([1, 160, 160, 3])))
  return model


def _checkpoint_module_tensors(checkpoint_path):
  """{'block_0/qkv_kernel': array, ...} of the GC module in a checkpoint."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  reader = tf.train.load_checkpoint(checkpoint_path)
  tensors = {}
  for key in reader.get_variable_to_shape_map():
    match = _GC_VARIABLE_KEY.search(key)
    if match:
      tensors[f'{match.group(1)}/{match.group(2)}'] = reader.get_tensor(key)
  return tensors


def _layout_text(num_layers, num_heads, head_channels):
  return (f'{num_layers} layer(s) x {num_heads} head(s) of {head_channels} '
          'channels')


def check_module_layout(layer, checkpoint_path):
  """Raises AttentionMapError unless the checkpoint's module has the layer's shapes.

  qkv_kernel is (C, 3, heads, d) per block: a config whose num_heads,
  num_layers or bottleneck_ratio differ from the trained model's builds other
  shapes, and the restore would fail with a bare shape error.
  """
  saved = _checkpoint_module_tensors(checkpoint_path)
  saved_blocks = sorted({name.split('/')[0] for name in saved})
  kernels = [saved.get(f'{block}/qkv_kernel') for block in saved_blocks]
  if not kernels or any(kernel is None or kernel.ndim != 4 for kernel in kernels):
    return  # check_module_restored names what is missing
  heads, channels = kernels[0].shape[2], kernels[0].shape[3]
  built = (layer.num_layers, layer.num_heads, layer.head_channels)
  trained = (len(kernels), heads, channels)
  if built != trained:
    raise AttentionMapError(
        f'--checkpoint={checkpoint_path}: its global-context module has '
        f'{_layout_text(*trained)} (num_layers: {trained[0]}, num_heads: '
        f'{trained[1]}, bottleneck_ratio: {layer.channels // (heads * channels)}), '
        f'but --pipeline_config_path builds {_layout_text(*built)}; set those '
        'fields as the model was trained, or pass its own pipeline.config')


def check_module_restored(layer, checkpoint_path):
  """Raises AttentionMapError unless the layer holds the checkpoint's module."""
  saved = _checkpoint_module_tensors(checkpoint_path)
  if not saved:
    raise AttentionMapError(
        f'--checkpoint={checkpoint_path}: the checkpoint holds no weights of '
        'the global-context module (no block_N/qkv_kernel); it was not written '
        'by this GC model (a stock detection or classification checkpoint?)')
  for variable in layer.variables:
    name = '/'.join(variable.name.split(':')[0].split('/')[-2:])
    if name not in saved:
      raise AttentionMapError(
          f'--checkpoint={checkpoint_path}: the checkpoint has no {name} of the '
          'global-context module (does pipeline.config have more num_layers '
          'than the model that was trained?)')
    if not np.array_equal(variable.numpy(), saved[name]):
      raise AttentionMapError(
          f'--checkpoint={checkpoint_path}: the global-context weight {name} '
          'was not restored (the checkpoint was written by a different model '
          'layout than --pipeline_config_path builds)')


def _module_and_stride(model, meta_architecture):
  extractor = model._feature_extractor  # pylint: disable=protected-access
  if meta_architecture == 'faster_rcnn':
    stride = extractor._first_stage_features_stride  # pylint: disable=protected-access
    return extractor.global_context, int(stride)
  return extractor.global_context, SSD_C5_STRIDE


def load_model(pipeline_config_path: str, checkpoint: str) -> LoadedModel:
  """Builds the GC model of a pipeline.config and restores a checkpoint.

  Raises:
    AttentionMapError: the config is missing or not a GC model, the checkpoint
      is missing or does not hold the module.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  configs = read_configs(pipeline_config_path)
  checkpoint_path = resolve_checkpoint(checkpoint)
  model = _build(configs)
  meta_architecture = configs['model'].WhichOneof('model')
  layer, stride = _module_and_stride(model, meta_architecture)
  check_module_layout(layer, checkpoint_path)
  try:
    tf.train.Checkpoint(model=model).restore(checkpoint_path).expect_partial()
  except ValueError as error:  # a stock variable's shape differs
    raise AttentionMapError(
        f'--checkpoint={checkpoint_path}: does not fit the model '
        f'--pipeline_config_path={pipeline_config_path} builds ({error}); use the '
        'pipeline.config the model was trained with') from None
  check_module_restored(layer, checkpoint_path)
  return LoadedModel(model, meta_architecture, layer, stride, checkpoint_path)


# ------------------------------------------------------------- computation --


def preprocess(loaded: LoadedModel, image: np.ndarray):
  """(H0, W0, 3) uint8 -> ((1, Hp, Wp, 3) float32 tensor, (1, 3) int32 true shapes)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return loaded.model.preprocess(tf.constant(image[None], tf.float32))


def module_input(loaded: LoadedModel, preprocessed):
  """The map the GC layer refines: (1, Hp, Wp, 3) -> (1, Hf, Wf, C) tensor.

  Faster R-CNN: the stock C4 model's output (C = 1024, stride 16).
  RetinaNet: the backbone's C5 (C = 2048, stride 32), after the extractor's
  pad_to_multiple, as in its _extract_features.
  """
  extractor = loaded.model._feature_extractor  # pylint: disable=protected-access
  if loaded.meta_architecture == 'faster_rcnn':
    return extractor.stock_proposal_model(preprocessed, training=False)
  from object_detection.utils import ops  # pylint: disable=g-import-not-at-top
  multiple = extractor._pad_to_multiple  # pylint: disable=protected-access
  padded = ops.pad_to_multiple(preprocessed, multiple)
  return extractor.classification_backbone(padded, training=False)[-1]


def attention_matrix(layer, features, block: int = 0) -> np.ndarray:
  """The layer's weights for one image: (1, Hf, Wf, C) -> (heads, HW, HW).

  Queries on axis 1, keys on axis 2, both in row-major (Hf, Wf) order; float32.
  """
  if not 0 <= block < layer.num_layers:
    raise AttentionMapError(f'--block={block}: the module has {layer.num_layers} '
                            f'block(s); use 0..{layer.num_layers - 1}')
  _, scores = layer(features, training=False, return_attention_scores=True)
  return scores[block][0].numpy()


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


def top_detection_queries(loaded: LoadedModel, preprocessed, true_shapes,
                          image_shape: Tuple[int, int], count: int):
  """The centres of the `count` best detections of the full model.

  Returns:
    points (K, 2) float32 (y, x) original pixels, boxes (K, 4) normalised to
    the true image, scores (K,); K <= count.
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


def compute_image_attention(loaded: LoadedModel, image: np.ndarray, name: str,
                            points: Sequence[Tuple[float, float]] = (),
                            top_detections: int = 0,
                            block: int = 0) -> ImageAttention:
  """Everything the pictures of one (H0, W0, 3) uint8 image need."""
  if not points and top_detections <= 0:
    raise AttentionMapError('no queries: give --points and/or --top_detections')
  preprocessed, true_shapes = preprocess(loaded, image)
  image_shape = image.shape[:2]
  true_shape = tuple(int(v) for v in true_shapes[0, :2].numpy())
  features = module_input(loaded, preprocessed)
  feature_shape = tuple(int(v) for v in features.shape[1:3])
  query_points = np.asarray(points, np.float32).reshape(-1, 2)
  boxes = np.full((len(query_points), 4), np.nan, np.float32)
  scores = np.full((len(query_points),), np.nan, np.float32)
  if top_detections > 0:
    detected, detected_boxes, detected_scores = top_detection_queries(
        loaded, preprocessed, true_shapes, image_shape, top_detections)
    query_points = np.concatenate([query_points, detected])
    boxes = np.concatenate([boxes, detected_boxes])
    scores = np.concatenate([scores, detected_scores])
  cells = [point_to_cell(point, image_shape, true_shape, loaded.stride, feature_shape)
           for point in query_points]
  matrix = attention_matrix(loaded.layer, features, block)
  return ImageAttention(
      name=name, image=image, true_shape=true_shape,
      padded_shape=tuple(int(v) for v in preprocessed.shape[1:3]),
      feature_shape=feature_shape, stride=loaded.stride, block=block,
      weights=attention_for_queries(matrix, cells, feature_shape),
      query_points=query_points,
      query_cells=np.asarray(cells, np.int32).reshape(-1, 2),
      query_boxes=boxes, query_scores=scores)


# --------------------------------------------------------------- rendering --


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
  return (min(attention.feature_shape[0], -(-attention.true_shape[0] // attention.stride)),
          min(attention.feature_shape[1], -(-attention.true_shape[1] // attention.stride)))


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
  """Lays out (picture (H, W, 3) uint8, title, draw(axes) or None) panels; PNG bytes."""
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
  grids = [('mean of %d heads' % len(weights), weights.mean(axis=0))]
  grids += [(f'head {head}', grid) for head, grid in enumerate(weights)]
  draw = lambda axes: _draw_query(axes, attention, index)
  panels = [(overlay(picture, grid, attention.stride, colormap),
             _panel_title(label, grid, attention), draw) for label, grid in grids]
  return _figure_png(panels, f'{attention.name}, block {attention.block}, '
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
                     f'over heads), block {attention.block}', max_columns=4)


# ------------------------------------------------------------------ output --


def arrays_npz(attention: ImageAttention) -> bytes:
  """The raw weights and queries of one image as .npz bytes."""
  buffer = io.BytesIO()
  np.savez(buffer, weights=attention.weights.astype(np.float32),
           query_cells=attention.query_cells, query_points=attention.query_points,
           query_boxes=attention.query_boxes, query_scores=attention.query_scores,
           image_shape=np.asarray(attention.image.shape[:2], np.int32),
           true_image_shape=np.asarray(attention.true_shape, np.int32),
           padded_image_shape=np.asarray(attention.padded_shape, np.int32),
           stride=np.int32(attention.stride), block=np.int32(attention.block))
  return buffer.getvalue()


def write_image_outputs(attention: ImageAttention, output_dir: str,
                        colormap: str = 'jet', save_arrays: bool = False,
                        summary_writer=None) -> List[str]:
  """Writes one image's PNGs (and .npz, summaries); returns the written paths.

  Nothing is written for an image without queries.
  """
  if not len(attention.weights):
    return []
  pictures = [(f'{attention.name}_q{index:02d}', render_query_png(attention, index,
                                                                   colormap))
              for index in range(len(attention.weights))]
  pictures.append((f'{attention.name}_grid', render_grid_png(attention, colormap)))
  written = []
  for stem, png in pictures:
    path = os.path.join(output_dir, stem + '.png')
    atomic_files.write_bytes(path, png)
    written.append(path)
  if save_arrays:
    path = os.path.join(output_dir, f'{attention.name}_attention.npz')
    atomic_files.write_bytes(path, arrays_npz(attention))
    written.append(path)
  if summary_writer is not None:
    _write_summaries(summary_writer, attention.name, pictures)
  return written


def _write_summaries(summary_writer, name, pictures):
  """Adds each (stem, PNG bytes) as an image summary under `name/`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  with summary_writer.as_default():
    for stem, png in pictures:
      tag = f'{name}/{stem[len(name) + 1:]}'
      tf.summary.image(tag, tf.io.decode_png(png, channels=3)[None], step=0)
  summary_writer.flush()


class Written(NamedTuple):
  """What run() did: the files written, and (path, reason) of each image skipped."""
  paths: List[str]
  skipped: List[Tuple[str, str]]


def run(pipeline_config_path: str, checkpoint: str, images: Sequence[str],
        output_dir: str, points_text: Optional[str] = None, top_detections: int = 0,
        block: int = 0, tensorboard_dir: Optional[str] = None,
        save_arrays: bool = False, colormap: str = 'jet') -> Written:
  """The CLI without flags.

  An image that cannot be read or run is reported on stderr and skipped; the
  others are still drawn.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  if not output_dir:
    raise AttentionMapError('--output_dir: required')
  if colormap not in matplotlib.colormaps:
    raise AttentionMapError(f'--colormap={colormap}: not a matplotlib colormap')
  if top_detections < 0:
    raise AttentionMapError(f'--top_detections={top_detections}: must be >= 0')
  points = parse_points(points_text)
  if not points and top_detections == 0:
    raise AttentionMapError('no queries: give --points and/or --top_detections')
  paths = expand_image_paths(images)
  loaded = load_model(pipeline_config_path, checkpoint)
  if not 0 <= block < loaded.layer.num_layers:
    raise AttentionMapError(f'--block={block}: the module has '
                            f'{loaded.layer.num_layers} block(s)')
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from gc_detection import op_errors  # pylint: disable=g-import-not-at-top
  writer = tf.summary.create_file_writer(tensorboard_dir) if tensorboard_dir else None
  written, skipped = [], []
  for path, stem in zip(paths, image_files.distinct_stems(paths)):
    try:
      image = image_files.load_image(path)
      attention = compute_image_attention(loaded, image, stem, points,
                                          top_detections, block)
    except (image_files.ImageError, AttentionMapError) as error:
      skipped.append(_skip(path, str(error)))
      continue
    except tf.errors.OpError as error:
      skipped.append(_skip(path, op_errors.model_failure(error, image.shape)))
      continue
    if not len(attention.weights):
      print(f'attention_maps: {path}: the model detected nothing, no query to '
            'draw', file=sys.stderr)
      continue
    written += write_image_outputs(attention, output_dir, colormap, save_arrays,
                                   writer)
  if writer is not None:
    writer.close()
  return Written(written, skipped)


def _skip(path, reason):
  """Reports an image that could not be drawn; returns (path, reason)."""
  print(f'attention_maps: skipped {path}: {reason}', file=sys.stderr)
  return path, reason


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  try:
    written = run(_PIPELINE_CONFIG_PATH.value, _CHECKPOINT.value, _IMAGES.value,
                  _OUTPUT_DIR.value, _POINTS.value, _TOP_DETECTIONS.value,
                  _BLOCK.value, _TENSORBOARD_DIR.value, _SAVE_ARRAYS.value,
                  _COLORMAP.value)
  except AttentionMapError as error:
    print(f'attention_maps: error: {error}', file=sys.stderr)
    return 2
  for path in written.paths:
    print(path)
  if written.skipped:
    print(f'attention_maps: {len(written.skipped)} image(s) skipped (see above)',
          file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  _define_flags()
  flags.mark_flags_as_required(['pipeline_config_path', 'checkpoint', 'images',
                                'output_dir'])
  app.run(main)
