"""RetinaNet (SSD ResNet-FPN) feature extractors with the global-context module.

Paper section 3.3 / Fig. 4: GlobalContextAttention refines C5 (conv5 output,
2048 channels, stride 32) once, between C5 and P5, so global context flows
down the FPN top-down path into every pyramid level (P3-P5) and into the
coarse levels P6, P7 computed from P5.

The stock extractor's backbone (`classification_backbone`, a functional model
with outputs C2..C5), FPN and coarse layers are left exactly as they are, so a
stock `ssd_resnet*_v1_fpn_keras` checkpoint restores into every stock variable;
the module is one more tracked layer of the extractor (`global_context`),
applied to the backbone's C5 output each time features are extracted.
"""
import tensorflow as tf

from object_detection.models import ssd_resnet_v1_fpn_keras_feature_extractor as stock
from object_detection.models.keras_models import resnet_v1
from object_detection.utils import ops

from gc_detection.od_api.extractors import global_context_extractor


class SSDResNetV1FpnGCKerasFeatureExtractor(
    global_context_extractor.GlobalContextExtractor,
    stock.SSDResNetV1FpnKerasFeatureExtractor):
  """The stock SSD ResNet-FPN extractor with GlobalContextAttention on C5."""
  GLOBAL_CONTEXT_STAGE = 'conv5'
  GLOBAL_CONTEXT_CHANNELS = 2048
  GLOBAL_CONTEXT_STRIDE = 32

  def __init__(self,
               is_training,
               depth_multiplier,
               min_depth,
               pad_to_multiple,
               conv_hyperparams,
               freeze_batchnorm,
               inplace_batchnorm_update,
               resnet_v1_base_model,
               resnet_v1_base_model_name,
               fpn_min_level=3,
               fpn_max_level=7,
               additional_layer_depth=256,
               reuse_weights=None,
               use_explicit_padding=None,
               use_depthwise=None,
               override_base_feature_extractor_hyperparams=False,
               name=None,
               gc_settings=None):
    """Constructor; see the stock class for the other arguments.

    Args:
      gc_settings: a GlobalContextSettings (None: the pipeline's being built,
        else the paper's defaults). The module's kernels get the
        regularizer of conv_hyperparams (the FPN's).

    Raises:
      settings_lib.InvalidGlobalContextSettings: the settings do not suit
        the model.
    """
    super().__init__(
        is_training=is_training,
        depth_multiplier=depth_multiplier,
        min_depth=min_depth,
        pad_to_multiple=pad_to_multiple,
        conv_hyperparams=conv_hyperparams,
        freeze_batchnorm=freeze_batchnorm,
        inplace_batchnorm_update=inplace_batchnorm_update,
        resnet_v1_base_model=resnet_v1_base_model,
        resnet_v1_base_model_name=resnet_v1_base_model_name,
        fpn_min_level=fpn_min_level,
        fpn_max_level=fpn_max_level,
        additional_layer_depth=additional_layer_depth,
        reuse_weights=reuse_weights,
        use_explicit_padding=use_explicit_padding,
        use_depthwise=use_depthwise,
        override_base_feature_extractor_hyperparams=(
            override_base_feature_extractor_hyperparams),
        name=name)
    self._init_global_context(gc_settings, resnet_v1_base_model_name,
                              conv_hyperparams.params().get('kernel_regularizer'))

  def _extract_features(self, preprocessed_inputs):
    """The stock feature maps P3..P7, computed from a refined C5.

    Args:
      preprocessed_inputs: (N, H, W, 3) float images.

    Returns:
      A list of (N, H_i, W_i, depth) feature maps, finest first.
    """
    backbone = self.classification_backbone

    def backbone_with_global_context(inputs):
      *finer, c5 = backbone(inputs)  # C2, C3, C4 and C5 (N, H/32, W/32, 2048)
      return finer + [self.global_context(c5)]

    # The stock method calls self.classification_backbone; for its duration
    # that name refers to the backbone followed by the module.
    # object.__setattr__ leaves Keras' tracking (and checkpoints) untouched.
    object.__setattr__(self, 'classification_backbone', backbone_with_global_context)
    try:
      return super()._extract_features(preprocessed_inputs)
    finally:
      object.__setattr__(self, 'classification_backbone', backbone)

  def global_context_input(self, preprocessed_inputs):
    """(N, H, W, 3) -> (N, H'/32, W'/32, 2048): C5 of the input padded as
    the stock extractor pads it (H', W' multiples of pad_to_multiple)."""
    padded = ops.pad_to_multiple(preprocessed_inputs, self._pad_to_multiple)
    return self.classification_backbone(padded)[-1]

  def stock_view_swaps(self, model, checkpoint_type):
    # "classification" restores the stock backbone alone (no GC layer in it).
    if checkpoint_type != 'detection':
      return []
    children = dict(self._trackable_children(save_type='checkpoint'))
    del children['global_context']
    return [(model, '_feature_extractor', tf.train.Checkpoint(**children))]


class SSDResNet50V1FpnGCKerasFeatureExtractor(SSDResNetV1FpnGCKerasFeatureExtractor):
  """RetinaNet ResNet-50 FPN + global context (the stock class's arguments)."""

  def __init__(self, *args, name='ResNet50V1_FPN', **kwargs):
    super().__init__(*args, resnet_v1_base_model=resnet_v1.resnet_v1_50,
                     resnet_v1_base_model_name='resnet_v1_50', name=name,
                     **kwargs)


class SSDResNet101V1FpnGCKerasFeatureExtractor(SSDResNetV1FpnGCKerasFeatureExtractor):
  """RetinaNet ResNet-101 FPN + global context (the stock class's arguments)."""

  def __init__(self, *args, name='ResNet101V1_FPN', **kwargs):
    super().__init__(*args, resnet_v1_base_model=resnet_v1.resnet_v1_101,
                     resnet_v1_base_model_name='resnet_v1_101', name=name,
                     **kwargs)


class SSDResNet152V1FpnGCKerasFeatureExtractor(SSDResNetV1FpnGCKerasFeatureExtractor):
  """RetinaNet ResNet-152 FPN + global context (the stock class's arguments)."""

  def __init__(self, *args, name='ResNet152V1_FPN', **kwargs):
    super().__init__(*args, resnet_v1_base_model=resnet_v1.resnet_v1_152,
                     resnet_v1_base_model_name='resnet_v1_152', name=name,
                     **kwargs)
