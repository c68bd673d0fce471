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
from object_detection.models import ssd_resnet_v1_fpn_keras_feature_extractor as stock
from object_detection.models.keras_models import resnet_v1

from gc_detection.models import bottleneck_initialization
from gc_detection.models import global_context_settings as settings_lib

C5_CHANNELS = 2048
C5_STAGE = 'conv5'


class SSDResNetV1FpnGCKerasFeatureExtractor(
    bottleneck_initialization.InitializesFromBottleneck,
    stock.SSDResNetV1FpnKerasFeatureExtractor):
  """The stock SSD ResNet-FPN extractor with GlobalContextAttention on C5."""

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
      gc_settings: a GlobalContextSettings (None: the paper's defaults).

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
    self.gc_settings = gc_settings or settings_lib.GlobalContextSettings()
    self.source_block = settings_lib.check_source_block(
        self.gc_settings, resnet_v1_base_model_name, C5_STAGE, C5_CHANNELS)
    self.global_context = settings_lib.make_global_context_layer(
        self.gc_settings, C5_CHANNELS)

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


def _depth_subclass(depth):
  """Returns the ResNet-{depth} subclass (stock defaults, e.g. its name)."""
  base_model = getattr(resnet_v1, f'resnet_v1_{depth}')

  class Extractor(SSDResNetV1FpnGCKerasFeatureExtractor):
    __doc__ = f'RetinaNet ResNet-{depth} FPN + global context.'

    def __init__(self, *args, name=f'ResNet{depth}V1_FPN', **kwargs):
      super().__init__(*args, resnet_v1_base_model=base_model,
                       resnet_v1_base_model_name=f'resnet_v1_{depth}',
                       name=name, **kwargs)

  Extractor.__name__ = Extractor.__qualname__ = (
      f'SSDResNet{depth}V1FpnGCKerasFeatureExtractor')
  return Extractor


SSDResNet50V1FpnGCKerasFeatureExtractor = _depth_subclass(50)
SSDResNet101V1FpnGCKerasFeatureExtractor = _depth_subclass(101)
SSDResNet152V1FpnGCKerasFeatureExtractor = _depth_subclass(152)
