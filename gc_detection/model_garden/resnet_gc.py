"""The `resnet_gc` backbone of official.vision: a stock ResNet + GlobalContextAttention.

The backbone is official.vision's own ResNet (`resnet.ResNet`, bottleneck
depths 50/101/152) with the project's GlobalContextAttention on the output of
one stage: after C5 (stage 5, the paper's placement for FPN models: the
decoder reads the refined C5) or after C4 (stage 4: stage 5 and the decoder
read the refined C4). Its outputs are the stock ones, `{'2': C2, ..., '5': C5}`
of shape (N, H/2^l, W/2^l, 64 * 2^l * 4), so every official.vision decoder and
head takes it unchanged.

The module gets the model's L2 regularizer (the one the stock ResNet's
convolutions get). Stock variables keep the stock layers' order, so
`stock_view()` (the same ResNet without the module) reads a stock checkpoint;
see gc_detection.model_garden.backbone_restore.
"""
import tensorflow as tf

from official.vision.modeling.backbones import factory
from official.vision.modeling.backbones import resnet

from gc_detection.layers import global_context_settings as settings_lib
from gc_detection.layers import true_image_sizes
from gc_detection.model_garden import backbone_config as gc_backbone_config

GLOBAL_CONTEXT_LAYER_NAME = 'global_context'


@tf.keras.utils.register_keras_serializable(package='gc_detection')
class ResNetGlobalContext(resnet.ResNet):
  """official.vision's ResNet with GlobalContextAttention after one stage.

  Input (N, H, W, 3); outputs {'2'..'5'}: (N, ceil(H/2^l), ceil(W/2^l), C_l),
  C_l = 256 * 2^(l-2) * depth_multiplier.
  """

  def __init__(self, model_id, global_context_settings, global_context_stage=5,
               **kwargs):
    """Args: those of resnet.ResNet, plus
      global_context_settings: a GlobalContextSettings.
      global_context_stage: 4 or 5, the stage whose output the module refines.
    """
    self._global_context_settings = global_context_settings
    self._global_context_stage = global_context_stage
    self._stock_kwargs = dict(model_id=model_id, **kwargs)
    super().__init__(model_id=model_id, **kwargs)
    self.global_context = self.get_layer(GLOBAL_CONTEXT_LAYER_NAME)

  def _block_group(self, inputs, filters, strides, block_fn, block_repeats=1,
                   stochastic_depth_drop_rate=0.0, name='block_group'):
    outputs = super()._block_group(
        inputs, filters, strides, block_fn, block_repeats=block_repeats,
        stochastic_depth_drop_rate=stochastic_depth_drop_rate, name=name)
    if name != f'block_group_l{self._global_context_stage}':
      return outputs
    channels = outputs.shape[-1]
    settings = self._global_context_settings
    if settings.initialization == settings_lib.BOTTLENECK:
      settings_lib.check_source_block(settings, self.stock_backbone_name,
                                      self.global_context_stage_name, channels)
    layer_class, layer_args = settings_lib.GlobalContextAttention, {}
    if settings.ignore_padding:  # sizes from gc_detection.model_garden.true_image_sizes
      layer_class = true_image_sizes.TrueSizeGlobalContextAttention
      layer_args = {'stride': 2**self._global_context_stage}
    layer = settings_lib.make_global_context_layer(
        settings, channels, name=GLOBAL_CONTEXT_LAYER_NAME,
        kernel_regularizer=self._kernel_regularizer, layer_class=layer_class,
        **layer_args)
    return layer(outputs)

  @property
  def global_context_settings(self):
    return self._global_context_settings

  @property
  def stock_backbone_name(self):
    """'resnet_v1_<depth>', the key of settings_lib.STAGE_BLOCKS."""
    return f'resnet_v1_{self._model_id}'

  @property
  def global_context_stage_name(self):
    """'conv4' or 'conv5': the stage in the source_block naming."""
    return f'conv{self._global_context_stage}'

  def stock_view(self):
    """A stock resnet.ResNet of the same configuration (fresh weights).

    Its layers with weights are this backbone's minus the module, in the same
    order; a stock checkpoint restores into it with every variable matched.
    """
    return resnet.ResNet(**self._stock_kwargs)

  def stock_layers(self):
    """This backbone's layers with weights, the module left out (stock order)."""
    return [layer for layer in self.layers
            if layer.weights and layer is not self.global_context]

  def get_config(self):
    config = super().get_config()
    config.update(
        global_context_settings=vars(self._global_context_settings),
        global_context_stage=self._global_context_stage)
    return config

  @classmethod
  def from_config(cls, config, custom_objects=None):
    config = dict(config)
    config['global_context_settings'] = settings_lib.GlobalContextSettings(
        **config['global_context_settings'])
    return cls(**config)


@factory.register_backbone_builder('resnet_gc')
def build_resnet_gc(input_specs, backbone_config: gc_backbone_config.Backbone,
                    norm_activation_config, l2_regularizer=None):
  """Builds ResNetGlobalContext from `task.model.backbone` (type 'resnet_gc').

  Raises:
    InvalidGlobalContextSettings: a resnet_gc value is out of range or does not
      suit the depth (the message names the field).
  """
  if backbone_config.type != 'resnet_gc':
    raise ValueError(f'build_resnet_gc: backbone type {backbone_config.type!r}, '
                     "expected 'resnet_gc'")
  config = backbone_config.get()
  settings = gc_backbone_config.global_context_settings(config)
  return ResNetGlobalContext(
      model_id=config.model_id,
      global_context_settings=settings,
      global_context_stage=config.global_context_stage,
      input_specs=input_specs,
      depth_multiplier=config.depth_multiplier,
      stem_type=config.stem_type,
      resnetd_shortcut=config.resnetd_shortcut,
      replace_stem_max_pool=config.replace_stem_max_pool,
      se_ratio=config.se_ratio,
      init_stochastic_depth_rate=config.stochastic_depth_drop_rate,
      scale_stem=config.scale_stem,
      activation=norm_activation_config.activation,
      use_sync_bn=norm_activation_config.use_sync_bn,
      norm_momentum=norm_activation_config.norm_momentum,
      norm_epsilon=norm_activation_config.norm_epsilon,
      kernel_regularizer=l2_regularizer,
      bn_trainable=config.bn_trainable)

