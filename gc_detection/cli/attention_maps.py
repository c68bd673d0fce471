r"""Attention maps of the global-context module: which context a cell read.

Why look. The paper's Fig. 1 (Lee, Kim, Jung, Electronics 2021) motivates the
module with a yellow disk: in a sky it is the sun, on a plate it is an egg
yolk. The disk's own pixels are the same in both pictures; only regions far
outside a convolution's receptive field tell the two apart. The module lets
every cell of the backbone map read every other cell: in stacked layer l,
head h, a query cell q gives each key cell k the weight

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
(bilinear, one feature cell = the extractor's global_context_stride resized
pixels: 16 for Faster R-CNN's C4, 32 for RetinaNet's C5), coloured with a
matplotlib colormap scaled from 0 to the panel's largest weight, and blended
over the picture. The white circle is the query point, the white square its
feature cell (a detection's box is drawn dashed). Each panel's title gives
the peak weight as a multiple of the uniform weight 1/(H*W) (1.0x: the head
spread its attention evenly), and, when the resizer padded the image, the
share of the weight that fell on the image: cells of the padding are keys
like any other to the module, and weight there is not drawn (a head that read
mostly padding stays dark). `<image>_grid.png` has one panel per query (mean
over heads) side by side. The colour scale is relative per panel; compare
panels by their titles.

With --save_arrays, `<image>_attention.npz` holds the raw weights (before any
colouring or cropping, over the full, padded feature grid), the query cells
and points; with --tensorboard_dir the same pictures go to TensorBoard as
image summaries (one event file per image).

A Model Garden model (a registered experiment with the resnet_gc backbone)
takes --experiment (with --config_file / --params_override as given to
official.vision.train) instead of --pipeline_config_path; it takes --points
only (no --top_detections).

Usage:
  python -m gc_detection.cli.attention_maps \
      --pipeline_config_path=models/frcnn_r50_gc/pipeline.config \
      --checkpoint=models/frcnn_r50_gc \
      --images=photos/breakfast.jpg,photos/sunset.jpg --output_dir=attention \
      [--points='120,340;400,90'] [--top_detections=3] [--layer_index=0] \
      [--tensorboard_dir=attention/tb] [--save_arrays] [--colormap=jet]
  python -m gc_detection.cli.attention_maps --experiment=seg_resnet50_fpn_gc_far_cue \
      --checkpoint=models/far_cue_segmentation_gc --images=data/far_cue_segmentation/val_images \
      --points='32,400' --output_dir=attention

Cost: the layer's full (heads, H*W, H*W) weight matrix is computed once per
image, e.g. 4 x 4096^2 float32 = 268 MB for a 1024 x 1024 Faster R-CNN input.

Points are `y,x` in pixels of the original image (row, column; the image
spans [0, height) x [0, width)), separated by `;`; every point is used on
every image. --images takes the same values as the infer command's (files,
directories, globs; comma-separated and/or repeated). --checkpoint is a
checkpoint prefix (`.../ckpt-12`) or a directory (its latest checkpoint).

Exit status: 0 when every image was drawn; 1 when any image was skipped (each
is named on stderr with the reason); 2 for a usage error
(`attention_maps: error: <message naming the flag>`). Every file is written to
a temporary file and renamed, so none is left half-written.
"""
import sys

from absl import flags

from gc_detection.attention_maps import files as attention_files
from gc_detection.attention_maps.image_attention import AttentionMapError
from gc_detection.cli import program

_PIPELINE_CONFIG_PATH = flags.DEFINE_string(
    'pipeline_config_path', None, 'OD API: pipeline.config of the trained GC model.')
_EXPERIMENT = flags.DEFINE_string(
    'experiment', None, 'Model Garden: the registered experiment of the trained '
    'model (its backbone must be resnet_gc); instead of --pipeline_config_path.')
_CONFIG_FILE = flags.DEFINE_multi_string(
    'config_file', None, 'Model Garden: YAML overrides of the experiment, as given '
    'to official.vision.train (e.g. model_dir/params.yaml).')
_PARAMS_OVERRIDE = flags.DEFINE_string(
    'params_override', None, 'Model Garden: overrides after --config_file, as '
    'official.vision.train takes them.')
_CHECKPOINT = flags.DEFINE_string(
    'checkpoint', None, 'Checkpoint prefix (e.g. model_dir/ckpt-12) or a '
    'directory whose latest checkpoint is used.')
_IMAGES = flags.DEFINE_multi_string(
    'images', None, 'Image files, directories (their *.jpg, *.jpeg, *.png) or '
    'globs; comma-separated and/or repeated.')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Where the PNGs go.')
_POINTS = flags.DEFINE_string(
    'points', None, 'Query points "y,x;y,x" in original-image pixels, used on '
    'every image.')
_TOP_DETECTIONS = flags.DEFINE_integer(
    'top_detections', 0, 'Also query the box centres of the K highest-scoring '
    'detections of each image.')
_LAYER_INDEX = flags.DEFINE_integer(
    'layer_index', 0, 'Which stacked attention layer of the module to show '
    '(0 = the first; the module has num_layers of them).')
_TENSORBOARD_DIR = flags.DEFINE_string(
    'tensorboard_dir', None, 'Also write the pictures as image summaries here.')
_SAVE_ARRAYS = flags.DEFINE_bool(
    'save_arrays', False, 'Also write <image>_attention.npz with the raw '
    'weights and the query cells.')
_COLORMAP = flags.DEFINE_string('colormap', 'jet', 'matplotlib colormap name.')


def _model_loader():
  """(load, compute) of the framework the flags name."""
  if bool(_PIPELINE_CONFIG_PATH.value) == bool(_EXPERIMENT.value):
    raise program.UsageError('give one of --pipeline_config_path (an OD API model) '
                             'and --experiment (a Model Garden model)')
  if _EXPERIMENT.value:
    from gc_detection.model_garden import attention_model  # pylint: disable=g-import-not-at-top
    return (lambda: attention_model.load_model(
        _EXPERIMENT.value, _CHECKPOINT.value, _CONFIG_FILE.value or (),
        _PARAMS_OVERRIDE.value)), attention_model.compute_image_attention
  from gc_detection.od_api import attention_model  # pylint: disable=g-import-not-at-top
  from gc_detection.od_api import attention_weights  # pylint: disable=g-import-not-at-top
  return (lambda: attention_model.load_model(_PIPELINE_CONFIG_PATH.value,
                                             _CHECKPOINT.value),
          attention_weights.compute_image_attention)


def main(argv):
  program.no_arguments(argv, hint='pass images with --images')
  program.require('checkpoint', 'images', 'output_dir')
  load, compute = _model_loader()
  try:
    written = attention_files.run(
        load, compute, _IMAGES.value, _OUTPUT_DIR.value, _POINTS.value,
        _TOP_DETECTIONS.value, _LAYER_INDEX.value, _TENSORBOARD_DIR.value,
        _SAVE_ARRAYS.value, _COLORMAP.value)
  except AttentionMapError as error:
    raise program.UsageError(str(error)) from error
  for path in written.paths:
    print(path)
  if written.skipped:
    print(f'attention_maps: {len(written.skipped)} image(s) skipped (see above)',
          file=sys.stderr)
    return program.EXIT_USER_ERROR
  return program.EXIT_OK


if __name__ == '__main__':
  program.run(main)
