"""What every GC feature extractor knows about its module, in one mixin.

An extractor owns where the module sits: the ResNet stage whose output it
refines (GLOBAL_CONTEXT_STAGE), that map's channels
(GLOBAL_CONTEXT_CHANNELS) and stride in resized-image pixels
(global_context_stride), and the map itself for an input
(global_context_input). Tools ask the extractor for these instead of
reading model internals, and the fine-tune restore asks it what a stock
checkpoint sees of it (stock_view_swaps).

Settings: explicit `gc_settings`, else those of the pipeline being built
(pipeline_binding.current_build_settings), else the paper's defaults. With
`ignore_padding` (the default) the module is a TrueSizeGlobalContextAttention:
inside the model's predict it attends within each image's true shape
(gc_detection.od_api.true_image_shapes).
"""
import tensorflow as tf

from gc_detection.layers import global_context_settings as settings_lib
from gc_detection.od_api import pipeline_binding
from gc_detection.layers import true_image_sizes
from gc_detection.od_api.extractors import bottleneck_initialization


class GlobalContextExtractor:
  """Mixin of the GC feature extractors (the first base of each).

  Subclasses set GLOBAL_CONTEXT_STAGE, GLOBAL_CONTEXT_CHANNELS and
  GLOBAL_CONTEXT_STRIDE, call `_init_global_context` at the end of __init__,
  and implement global_context_input and stock_view_swaps. They
  provide `classification_backbone` (the Keras ResNet, None until built).
  """
  GLOBAL_CONTEXT_STAGE = None  # e.g. 'conv4'
  GLOBAL_CONTEXT_CHANNELS = None  # C of the map the module refines
  GLOBAL_CONTEXT_STRIDE = None  # its stride in resized-image pixels

  def _init_global_context(self, gc_settings, backbone_name, kernel_regularizer=None):
    """Sets gc_settings, source_block and global_context (the unbuilt layer).

    Raises:
      settings_lib.InvalidGlobalContextSettings: the settings do not suit
        the model.
    """
    self.gc_settings = gc_settings or pipeline_binding.current_build_settings(
        type(self).__name__)
    self.source_block = settings_lib.check_source_block(
        self.gc_settings, backbone_name, self.GLOBAL_CONTEXT_STAGE,
        self.GLOBAL_CONTEXT_CHANNELS)
    layer_class, layer_args = settings_lib.GlobalContextAttention, {}
    if self.gc_settings.ignore_padding:
      layer_class = true_image_sizes.TrueSizeGlobalContextAttention
      layer_args = {'stride': self.global_context_stride}
    self.global_context = settings_lib.make_global_context_layer(
        self.gc_settings, self.GLOBAL_CONTEXT_CHANNELS,
        kernel_regularizer=kernel_regularizer, layer_class=layer_class, **layer_args)

  @property
  def global_context_stride(self):
    """Resized-image pixels per cell of the map the module refines."""
    return self.GLOBAL_CONTEXT_STRIDE

  def global_context_input(self, preprocessed_inputs):
    """The map the module refines: (N, H, W, 3) -> (N, H', W', C).

    The model must have been run once (its layers built).
    """
    raise NotImplementedError

  def stock_view_swaps(self, model, checkpoint_type):
    """What a restore of a stock checkpoint must see instead of this extractor.

    Returns:
      [(owner, attribute, stand-in)]: while each owner's attribute is the
      stand-in, the model's tracked objects are those of the stock model (no
      GC layer); empty when the checkpoint type does not restore the module's
      neighbourhood.
    """
    raise NotImplementedError

  def initialize_global_context_from_backbone(self):
    """Sets the module from `source_block` of the (restored) ResNet.

    The paper's BOTTLENECK initialisation, run after a fine-tune restore.
    """
    if self.classification_backbone is None or not self.global_context.built:
      raise ValueError(f'{type(self).__name__}.initialize_global_context_from_backbone '
                       'needs built weights: run the detection model once first')
    bottleneck_initialization.initialize_from_bottleneck(
        self.global_context, self.classification_backbone, self.source_block,
        self.gc_settings.fold_batch_norm)


def l2_regularizer(weight):
  """tf.keras l2(weight), or None for no weight decay."""
  return tf.keras.regularizers.l2(weight) if weight else None
