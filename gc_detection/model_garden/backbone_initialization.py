"""Stock checkpoints into the resnet_gc backbone, then the paper's initialisation.

`Task.initialize` of official.vision reads `init_checkpoint` into
`model.backbone` and asserts that every backbone object was in it. A stock
ResNet checkpoint has no module, and official.vision's functional ResNet
names its layers by position (`backbone/layer_with_weights-<i>/...`), so a
module after C4 would shift every later layer (a shape mismatch). Here a
stock checkpoint is read into the backbone's stock view (the same ResNet
without the module) under the same assertion, every stock layer is copied
across, and the module is then initialised from a bottleneck block of the
restored stage (initialization 'bottleneck'). A checkpoint that holds the
module (a resnet_gc model) is read straight into the backbone.

The stock trainer calls `Task.initialize` only when model_dir has no
checkpoint yet, so a resumed run keeps its trained module.
"""
from absl import logging
import tensorflow as tf

from official.vision.modeling.backbones import resnet
from official.vision.modeling.layers import nn_blocks

from gc_detection import user_errors
from gc_detection.layers import bottleneck_initialization
from gc_detection.layers import checkpoint_keys
from gc_detection.layers import global_context_settings as settings_lib
from gc_detection.model_garden import resnet_gc


class BackboneCheckpointError(ValueError, user_errors.UserError):
  """init_checkpoint does not fit the resnet_gc backbone."""


def stage_blocks(backbone, stage):
  """The bottleneck blocks (nn_blocks.BottleneckBlock layers) of stage 2..5, in order."""
  blocks = [layer for layer in backbone.layers
            if isinstance(layer, nn_blocks.BottleneckBlock)]
  repeats = [spec[2] for spec in resnet.RESNET_SPECS[backbone._model_id]]  # pylint: disable=protected-access
  start = sum(repeats[:stage - 2])
  return blocks[start:start + repeats[stage - 2]]


def source_block_layers(block):
  """(reduce conv, its batch norm, expand conv, its batch norm) of a block.

  official.vision's BottleneckBlock keeps them as _conv1/_norm1 and
  _conv3/_norm3; this is the one place that reads them.
  """
  try:
    return block._conv1, block._norm1, block._conv3, block._norm3  # pylint: disable=protected-access
  except AttributeError as error:
    raise TypeError(
        f'{type(block).__name__} has no _conv1/_norm1/_conv3/_norm3: this '
        'tf-models-official changed BottleneckBlock, so the bottleneck '
        'initialisation cannot find its 1x1 convolutions') from error


def initialize_from_source_block(backbone):
  """Copies the configured source block into the module (paper Sec. 3.4).

  Returns the block's name, e.g. 'conv5_block3'.
  """
  settings = backbone.global_context_settings
  name = settings_lib.check_source_block(
      settings, backbone.stock_backbone_name, backbone.global_context_stage_name,
      backbone.global_context.channels)
  index = int(name.rsplit('block', 1)[1])
  block = stage_blocks(backbone, int(backbone.global_context_stage_name[-1]))[index - 1]
  reduce_conv, reduce_norm, expand_conv, expand_norm = source_block_layers(block)
  fold = settings.fold_batch_norm
  bottleneck_initialization.initialize_from_bottleneck(
      backbone.global_context, reduce_conv, expand_conv,
      reduce_batch_norm=reduce_norm if fold else None,
      expand_batch_norm=expand_norm if fold else None)
  return name


def restore_backbone(backbone, checkpoint_path):
  """Reads a stock or resnet_gc checkpoint into a ResNetGlobalContext backbone.

  Args:
    backbone: a built ResNetGlobalContext.
    checkpoint_path: a checkpoint whose `backbone` holds an official.vision
      ResNet of the same depth (an ImageNet classifier's, or any official.vision
      model's), with or without the module.

  Returns:
    True if the checkpoint held the module (its weights were restored too).

  Raises:
    BackboneCheckpointError: naming the checkpoint and what did not fit.
  """
  if checkpoint_keys.has_module_weights(checkpoint_path):
    try:
      status = tf.train.Checkpoint(backbone=backbone).read(checkpoint_path)
      status.expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError) as error:
      raise BackboneCheckpointError(
          f'task.init_checkpoint: {checkpoint_path} holds a global-context '
          f'backbone that differs from task.model.backbone.resnet_gc (depth, '
          f'global_context_stage, num_layers or channels): {error}') from None
    return True
  stock = backbone.stock_view()
  try:
    status = tf.train.Checkpoint(backbone=stock).read(checkpoint_path)
    status.expect_partial().assert_existing_objects_matched()
  except (AssertionError, ValueError) as error:
    raise BackboneCheckpointError(
        f'task.init_checkpoint: {checkpoint_path} is not a checkpoint of a '
        f'stock official.vision ResNet-{backbone._model_id} backbone '  # pylint: disable=protected-access
        f'(tf.train.Checkpoint(backbone=...)): {error}') from None
  stock_layers = [layer for layer in stock.layers if layer.weights]
  gc_layers = backbone.stock_layers()
  if len(stock_layers) != len(gc_layers):
    raise AssertionError(f'the stock view has {len(stock_layers)} layers with '
                         f'weights, the backbone {len(gc_layers)} besides the module')
  for stock_layer, gc_layer in zip(stock_layers, gc_layers):
    gc_layer.set_weights(stock_layer.get_weights())
  logging.info('gc_detection: %d stock backbone layers restored from %s into '
               'the resnet_gc backbone; the global-context module is new.',
               len(gc_layers), checkpoint_path)
  return False


def initialize_backbone(backbone, checkpoint_path):
  """restore_backbone, then the bottleneck initialisation if it is configured
  and the checkpoint had no module."""
  restored_module = restore_backbone(backbone, checkpoint_path)
  settings = backbone.global_context_settings
  if restored_module or settings.initialization != settings_lib.BOTTLENECK:
    return
  block = initialize_from_source_block(backbone)
  logging.info('gc_detection: global-context module initialised from %s of the '
               'restored backbone, batch norm %s.', block,
               'folded in' if settings.fold_batch_norm else 'not folded')


def _checkpoint_file(checkpoint):
  if tf.io.gfile.isdir(checkpoint):
    return tf.train.latest_checkpoint(checkpoint)
  return checkpoint


def initialize_model(model, checkpoint, modules):
  """Task.initialize for a model whose backbone may be resnet_gc.

  Args:
    model: an official.vision model with `backbone` and `checkpoint_items`.
    checkpoint: task.init_checkpoint (a file prefix or a directory).
    modules: task.init_checkpoint_modules ('all', or a list of 'backbone',
      'decoder', ...).
  """
  path = _checkpoint_file(checkpoint)
  if not path:
    raise BackboneCheckpointError(
        f'task.init_checkpoint: {checkpoint!r} has no checkpoint')
  modules = [modules] if isinstance(modules, str) else list(modules)
  items = dict(model.checkpoint_items)
  if 'all' not in modules:
    items = {name: item for name, item in items.items() if name in modules}
  backbone = items.pop('backbone', None)
  if isinstance(backbone, resnet_gc.ResNetGlobalContext):
    initialize_backbone(backbone, path)
  elif backbone is not None:
    items['backbone'] = backbone
  if items:
    status = tf.train.Checkpoint(**items).read(path)
    status.expect_partial().assert_existing_objects_matched()
  logging.info('Finished loading pretrained checkpoint from %s (%s)', path,
               ', '.join(modules))


class TaskInitialization:
  """official.vision Task mixin: `initialize` through initialize_model.

  Put it before the stock task class in the bases; every gc_detection task of
  Model Garden reads its init_checkpoint this way.
  """

  def initialize(self, model):
    if not self.task_config.init_checkpoint:
      return
    initialize_model(model, self.task_config.init_checkpoint,
                     self.task_config.init_checkpoint_modules)
