"""A trained Model Garden model with the resnet_gc backbone, restored for reading its attention.

Any registered experiment whose `task.model.backbone` is resnet_gc (the
segmentation experiments, RetinaNet, Mask R-CNN) is built with its task's
`build_model`, restored from a checkpoint of its model_dir, and read where the
module sits: `backbone.global_context` refines the output of stage
`global_context_stage` (stride 2^stage). Images go in as the evaluation input
pipeline feeds them: normalised with the ImageNet mean and deviation, resized
keeping the aspect ratio into the experiment's input size and padded at the
bottom and right. Wrong inputs raise AttentionMapError naming the flag.
"""
import dataclasses
from typing import Sequence, Tuple

import numpy as np
import tensorflow as tf

from official.core import exp_factory
from official.core import task_factory
from official.modeling import hyperparams
from official.vision.ops import preprocess_ops

from gc_detection.attention_maps import image_attention
from gc_detection.attention_maps.image_attention import AttentionMapError
from gc_detection.layers import checkpoint_keys
from gc_detection.model_garden import registry  # pylint: disable=unused-import
from gc_detection.model_garden import resnet_gc


@dataclasses.dataclass
class LoadedModel:
  """model: the restored Keras model; layer: its GlobalContextAttention;
  module_input: a Keras model (N, H, W, 3) -> (N, H/stride, W/stride, C), the map
  the layer refines; input_size: (H, W) of the experiment; stride: 2^stage."""
  model: tf.keras.Model
  layer: tf.keras.layers.Layer
  module_input: tf.keras.Model
  input_size: Tuple[int, int]
  stride: int


def experiment_config(experiment, config_files=(), params_override=None):
  """The registered experiment with the YAML files and overrides applied (strict)."""
  try:
    config = exp_factory.get_exp_config(experiment)
  except (KeyError, LookupError):
    raise AttentionMapError(f'--experiment={experiment}: not a registered experiment '
                            '(gc_detection registers seg_resnet50_fpn_gc_coco, '
                            'seg_resnet50_fpn_gc_far_cue, ...)') from None
  for path in config_files:
    try:
      config = hyperparams.override_params_dict(config, path, is_strict=True)
    except (KeyError, ValueError, OSError) as error:
      raise AttentionMapError(f'--config_file={path}: {error}') from None
  if params_override:
    try:
      config = hyperparams.override_params_dict(config, params_override, is_strict=True)
    except (KeyError, ValueError) as error:
      raise AttentionMapError(f'--params_override: {error}') from None
  return config


def _checkpoint_path(checkpoint):
  path = tf.train.latest_checkpoint(checkpoint) if tf.io.gfile.isdir(checkpoint) else checkpoint
  if not path or not tf.io.gfile.exists(path + '.index'):
    raise AttentionMapError(f'--checkpoint={checkpoint}: no checkpoint there (a prefix '
                            'like model_dir/ckpt-600, or a model_dir)')
  if not checkpoint_keys.has_module_weights(path):
    raise AttentionMapError(f'--checkpoint={checkpoint}: {path} holds no global-context '
                            'weights (a stock model\'s checkpoint?)')
  return path


def load_model(experiment, checkpoint, config_files=(), params_override=None):
  """Builds the experiment's model and restores it from checkpoint (a prefix or a dir)."""
  config = experiment_config(experiment, config_files, params_override)
  backbone_type = config.task.model.backbone.type
  if backbone_type != 'resnet_gc':
    raise AttentionMapError(f'--experiment={experiment}: task.model.backbone.type is '
                            f'{backbone_type!r}, not resnet_gc: no module to draw')
  path = _checkpoint_path(checkpoint)
  model = task_factory.get_task(config.task).build_model()
  try:
    tf.train.Checkpoint(model=model).read(path).expect_partial(
        ).assert_existing_objects_matched()
  except (AssertionError, ValueError) as error:
    raise AttentionMapError(
        f'--checkpoint={checkpoint}: {path} does not fit the model of '
        f'--experiment={experiment} with its --config_file/--params_override '
        f'(num_heads, num_layers, global_context_stage, classes?): {error}'.splitlines()[0]
    ) from None
  backbone = model.backbone
  assert isinstance(backbone, resnet_gc.ResNetGlobalContext)
  stage = int(backbone.global_context_stage_name[-1])
  return LoadedModel(
      model=model, layer=backbone.global_context,
      module_input=tf.keras.Model(backbone.inputs, backbone.global_context.input),
      input_size=tuple(config.task.model.input_size[:2]), stride=2 ** stage)


def preprocess(loaded, image):
  """(H0, W0, 3) uint8 -> ((1, H, W, 3) float32 input, (Hr, Wr) resized size)."""
  normalised = preprocess_ops.normalize_image(tf.constant(image))
  resized, image_info = preprocess_ops.resize_and_crop_image(
      normalised, loaded.input_size, padded_size=loaded.input_size)
  true_shape = tuple(int(v) for v in np.round(image_info[1].numpy()))
  return resized[None], true_shape


def compute_image_attention(loaded, image: np.ndarray, name: str,
                            points: Sequence[Tuple[float, float]] = (),
                            top_detections: int = 0,
                            layer_index: int = 0) -> image_attention.ImageAttention:
  """The attention of the (y, x) points of one (H0, W0, 3) uint8 image."""
  if top_detections:
    raise AttentionMapError('--top_detections: not for Model Garden models here; '
                            'query image points with --points')
  if not points:
    raise AttentionMapError('no queries: give --points')
  inputs, true_shape = preprocess(loaded, image)
  features = loaded.module_input(inputs, training=False)
  feature_shape = tuple(int(v) for v in features.shape[1:3])
  query_points = np.asarray(points, np.float32).reshape(-1, 2)
  cells = [image_attention.point_to_cell(point, image.shape[:2], true_shape,
                                         loaded.stride, feature_shape)
           for point in query_points]
  matrix = image_attention.attention_matrix(loaded.layer, features, layer_index)
  return image_attention.ImageAttention(
      name=name, image=image, true_shape=true_shape,
      padded_shape=tuple(loaded.input_size), feature_shape=feature_shape,
      stride=loaded.stride, layer_index=layer_index,
      weights=image_attention.attention_for_queries(matrix, cells, feature_shape),
      query_points=query_points,
      query_cells=np.asarray(cells, np.int32).reshape(-1, 2),
      query_boxes=np.full((len(query_points), 4), np.nan, np.float32),
      query_scores=np.full((len(query_points),), np.nan, np.float32))
