"""The attention-map tool's run: image files in, pictures, arrays and summaries out.

Per image with at least one query: `<image>_q<NN>.png` per query,
`<image>_grid.png`, with save_arrays `<image>_attention.npz` (the raw weights
over the full, padded feature grid, the query cells and points), and with a
TensorBoard directory one event file holding the pictures as image summaries.
Every file is written through atomic_files: complete, or not at all.
"""
import io
import os
import sys
import tempfile
from typing import Any, Callable, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from gc_detection import atomic_files
from gc_detection.data import image_files
from gc_detection.attention_maps import image_attention
from gc_detection.attention_maps import pictures as attention_pictures
from gc_detection.attention_maps.image_attention import AttentionMapError


class Written(NamedTuple):
  """What run() did: the files written, and (path, reason) of each image skipped."""
  paths: List[str]
  skipped: List[Tuple[str, str]]


def expand_image_paths(specs: Sequence[str]) -> List[str]:
  """Files, directories and globs (image_files.expand_images) -> image files."""
  try:
    return image_files.expand_images(specs)
  except image_files.NoImagesError as error:
    raise AttentionMapError(str(error)) from error


def arrays_npz(attention: image_attention.ImageAttention) -> bytes:
  """The raw weights and queries of one image as .npz bytes (shapes: ImageAttention)."""
  buffer = io.BytesIO()
  np.savez(buffer, weights=attention.weights.astype(np.float32),
           query_cells=attention.query_cells, query_points=attention.query_points,
           query_boxes=attention.query_boxes, query_scores=attention.query_scores,
           image_shape=np.asarray(attention.image.shape[:2], np.int32),
           true_image_shape=np.asarray(attention.true_shape, np.int32),
           padded_image_shape=np.asarray(attention.padded_shape, np.int32),
           stride=np.int32(attention.stride),
           layer_index=np.int32(attention.layer_index))
  return buffer.getvalue()


def write_summaries(tensorboard_dir: str, name: str,
                    pictures: Sequence[Tuple[str, bytes]]) -> List[str]:
  """Writes each (stem, PNG bytes) as an image summary `name/<stem suffix>`.

  The event file is written in a temporary directory, then copied into
  tensorboard_dir atomically. Returns the paths written there.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  written = []
  with tempfile.TemporaryDirectory() as staging:
    writer = tf.summary.create_file_writer(staging)
    with writer.as_default():
      for stem, png in pictures:
        tf.summary.image(f'{name}/{stem[len(name) + 1:]}',
                         tf.io.decode_png(png, channels=3)[None], step=0)
    writer.close()
    for file_name in sorted(os.listdir(staging)):
      with open(os.path.join(staging, file_name), 'rb') as source:
        path = os.path.join(tensorboard_dir, file_name)
        atomic_files.write_bytes(path, source.read())
      written.append(path)
  return written


def write_image_outputs(attention: image_attention.ImageAttention, output_dir: str,
                        colormap: str = 'jet', save_arrays: bool = False,
                        tensorboard_dir: Optional[str] = None) -> List[str]:
  """Writes one image's PNGs (and .npz, summaries); returns the written paths.

  Nothing is written for an image without queries.
  """
  if not len(attention.weights):
    return []
  pictures = [(f'{attention.name}_q{index:02d}',
               attention_pictures.render_query_png(attention, index, colormap))
              for index in range(len(attention.weights))]
  pictures.append((f'{attention.name}_grid',
                   attention_pictures.render_grid_png(attention, colormap)))
  written = []
  for stem, png in pictures:
    path = os.path.join(output_dir, stem + '.png')
    atomic_files.write_bytes(path, png)
    written.append(path)
  if save_arrays:
    path = os.path.join(output_dir, f'{attention.name}_attention.npz')
    atomic_files.write_bytes(path, arrays_npz(attention))
    written.append(path)
  if tensorboard_dir:
    written += write_summaries(tensorboard_dir, attention.name, pictures)
  return written


def _skip(path, reason):
  """Reports an image that could not be drawn; returns (path, reason)."""
  print(f'attention_maps: skipped {path}: {reason}', file=sys.stderr)
  return path, reason


def _check_options(output_dir, colormap, top_detections, points):
  """Raises AttentionMapError naming the first wrong option."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  if not output_dir:
    raise AttentionMapError('--output_dir: required')
  if colormap not in matplotlib.colormaps:
    raise AttentionMapError(f'--colormap={colormap}: not a matplotlib colormap')
  if top_detections < 0:
    raise AttentionMapError(f'--top_detections={top_detections}: must be >= 0')
  if not points and top_detections == 0:
    raise AttentionMapError('no queries: give --points and/or --top_detections')


def _image_attention(loaded, compute, path, stem, points, top_detections, layer_index):
  """compute(...) of one image file.

  Raises ImageError or AttentionMapError with a one-line reason.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from gc_detection import op_errors  # pylint: disable=g-import-not-at-top
  image = image_files.load_image(path)
  try:
    return compute(loaded, image, stem, points, top_detections, layer_index)
  except tf.errors.OpError as error:
    raise image_files.ImageError(op_errors.model_failure(error, image.shape)) from error


def run(load: Callable[[], Any], compute: Callable[..., image_attention.ImageAttention],
        images: Sequence[str], output_dir: str, points_text: Optional[str] = None,
        top_detections: int = 0, layer_index: int = 0,
        tensorboard_dir: Optional[str] = None, save_arrays: bool = False,
        colormap: str = 'jet') -> Written:
  """Draws the attention of every image's queries; the command without flags.

  Args:
    load: () -> the restored model (anything with `.layer`, the module), called
      once the options and images are checked.
    compute: (loaded, image (H0, W0, 3) uint8, name, points, top_detections,
      layer_index) -> ImageAttention, the adapter's.

  Raises AttentionMapError for a wrong option, image list, config or
  checkpoint. An image that cannot be read or run is reported on stderr and
  skipped; the others are still drawn.
  """
  points = image_attention.parse_points(points_text)
  _check_options(output_dir, colormap, top_detections, points)
  paths = expand_image_paths(images)
  loaded = load()
  image_attention.check_layer_index(loaded.layer, layer_index)
  written, skipped = [], []
  for path, stem in zip(paths, image_files.distinct_stems(paths)):
    try:
      attention = _image_attention(loaded, compute, path, stem, points, top_detections,
                                   layer_index)
    except (image_files.ImageError, AttentionMapError) as error:
      skipped.append(_skip(path, str(error)))
      continue
    if not len(attention.weights):
      print(f'attention_maps: {path}: the model detected nothing, no query to '
            'draw', file=sys.stderr)
      continue
    written += write_image_outputs(attention, output_dir, colormap, save_arrays,
                                   tensorboard_dir)
  return Written(written, skipped)
