"""A trained GC detection model, restored for reading its attention.

The model is built from its pipeline.config with the OD API's model_builder
and restored from a checkpoint; its GC feature extractor (found with
model_builder_hooks.gc_extractor_of) says where the module sits: its layer
(`global_context`), the map it refines (`global_context_input`) and that
map's stride (`global_context_stride`). Wrong inputs raise AttentionMapError
naming the flag and the fix.
"""
import dataclasses
import os

import numpy as np

from gc_detection import user_errors
from gc_detection.attention_maps.image_attention import AttentionMapError
from gc_detection.layers import checkpoint_keys
from gc_detection.od_api import model_builder_hooks

# Any size the resizer accepts: the first run creates the variables.
_BUILD_INPUT_SHAPE = (1, 160, 160, 3)


@dataclasses.dataclass(frozen=True)
class LoadedModel:
  """A restored GC detection model and how to reach its module.

  Attributes:
    model: the OD API DetectionModel (built, restored).
    meta_architecture: 'faster_rcnn' or 'ssd'.
    extractor: its GC feature extractor (a GlobalContextExtractor).
    layer: the extractor's GlobalContextAttention.
    stride: resized-image pixels per cell of the map the layer refines.
    checkpoint_path: the checkpoint prefix that was restored.
  """
  model: object
  meta_architecture: str
  extractor: object
  layer: object
  stride: int
  checkpoint_path: str


def resolve_checkpoint(checkpoint):
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


def read_configs(pipeline_config_path):
  """Parses pipeline.config; checks its model is a GC type. Returns the configs dict.

  Registers gc_detection first, so this works without the start-up hook.
  """
  import gc_detection  # pylint: disable=g-import-not-at-top
  gc_detection.register()
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
  gc_types = model_builder_hooks.gc_types()
  if extractor_type not in gc_types:
    raise AttentionMapError(
        f'--pipeline_config_path={pipeline_config_path}: the model '
        f'({meta_architecture}, feature_extractor type {extractor_type!r}) has '
        'no global-context module, so there is no attention to show; use a '
        f'config with one of {", ".join(gc_types)}')
  return configs


def _build(configs):
  """Builds the model (inference) and runs it once so every variable exists."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from object_detection.builders import model_builder  # pylint: disable=g-import-not-at-top
  model = model_builder.build(configs['model'], is_training=False)
  model.predict(*model.preprocess(tf.zeros(_BUILD_INPUT_SHAPE)))
  return model


def _layout_text(num_layers, num_heads, head_channels):
  return (f'{num_layers} layer(s) x {num_heads} head(s) of {head_channels} '
          'channels')


def check_module_layout(layer, checkpoint_path):
  """Raises AttentionMapError unless the checkpoint's module has the layer's shapes.

  qkv_kernel is (C, 3, heads, d) per stacked layer: a config whose
  num_heads, num_layers or bottleneck_ratio differ from the trained model's
  builds other shapes, and the restore would fail with a bare shape error.
  """
  saved = checkpoint_keys.module_weights(checkpoint_path)
  saved_layers = sorted({name.split('/')[0] for name in saved})
  kernels = [saved.get(f'{name}/qkv_kernel') for name in saved_layers]
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


def _checkpoint_name(variable):
  """'block_<i>/<weight>' of one of the layer's variables, as checkpoint_keys names it."""
  return '/'.join(variable.name.split(':')[0].split('/')[-2:])


def check_module_restored(layer, checkpoint_path):
  """Raises AttentionMapError unless the layer holds the checkpoint's module."""
  saved = checkpoint_keys.module_weights(checkpoint_path)
  if not saved:
    raise AttentionMapError(
        f'--checkpoint={checkpoint_path}: the checkpoint holds no weights of '
        'the global-context module (no block_N/qkv_kernel); it was not written '
        'by this GC model (a stock detection or classification checkpoint?)')
  for variable in layer.variables:
    name = _checkpoint_name(variable)
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


def _gc_extractor(model, pipeline_config_path):
  extractor = model_builder_hooks.gc_extractor_of(model)
  if extractor is None:
    raise AttentionMapError(f'--pipeline_config_path={pipeline_config_path}: the '
                            'built model has no global-context feature extractor')
  return extractor


def _restore(model, checkpoint_path, pipeline_config_path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    tf.train.Checkpoint(model=model).restore(checkpoint_path).expect_partial()
  except ValueError as error:  # a stock variable's shape differs
    raise AttentionMapError(
        f'--checkpoint={checkpoint_path}: does not fit the model '
        f'--pipeline_config_path={pipeline_config_path} builds ({error}); use the '
        'pipeline.config the model was trained with') from None


def load_model(pipeline_config_path, checkpoint):
  """Builds the GC model of a pipeline.config and restores a checkpoint.

  Raises:
    AttentionMapError: the config is missing or not a GC model, the checkpoint
      is missing or does not hold the module.
  """
  configs = read_configs(pipeline_config_path)
  checkpoint_path = resolve_checkpoint(checkpoint)
  model = _build(configs)
  extractor = _gc_extractor(model, pipeline_config_path)
  layer = extractor.global_context
  check_module_layout(layer, checkpoint_path)
  _restore(model, checkpoint_path, pipeline_config_path)
  check_module_restored(layer, checkpoint_path)
  return LoadedModel(model=model,
                     meta_architecture=configs['model'].WhichOneof('model'),
                     extractor=extractor, layer=layer,
                     stride=int(extractor.global_context_stride),
                     checkpoint_path=checkpoint_path)
