"""Experiment-config dataclasses of the `resnet_gc` backbone (Model Garden).

In an experiment YAML (or `--params_override`):

    task:
      model:
        backbone:
          type: resnet_gc
          resnet_gc:
            model_id: 50            # 50, 101 or 152
            global_context_stage: 5 # 5: after C5 (the paper's FPN placement); 4: after C4
            global_context:
              num_heads: 4
              initialization: bottleneck

`global_context` has the fields, meanings and defaults of the OD API's
pipeline.config extension (protos/global_context.proto); `chunk_threshold: 0`
means never chunk, `source_block: ''` the stage's last block.
"""
import dataclasses

from official.modeling import hyperparams
from official.vision.configs import backbones

from gc_detection.layers import global_context_settings as settings_lib

_DEFAULTS = settings_lib.GlobalContextSettings()
GLOBAL_CONTEXT_STAGES = (4, 5)
MODEL_IDS = (50, 101, 152)


@dataclasses.dataclass
class GlobalContext(hyperparams.Config):
  """The module's settings (see protos/global_context.proto for each field)."""
  num_heads: int = _DEFAULTS.num_heads
  num_layers: int = _DEFAULTS.num_layers
  bottleneck_ratio: int = _DEFAULTS.bottleneck_ratio
  use_residual: bool = _DEFAULTS.use_residual
  attention_dropout: float = _DEFAULTS.attention_dropout
  chunk_threshold: int = _DEFAULTS.chunk_threshold
  chunk_size: int = _DEFAULTS.chunk_size
  initialization: str = _DEFAULTS.initialization
  source_block: str = _DEFAULTS.source_block
  fold_batch_norm: bool = _DEFAULTS.fold_batch_norm
  ignore_padding: bool = _DEFAULTS.ignore_padding


@dataclasses.dataclass
class ResNetGlobalContext(backbones.ResNet):
  """The stock ResNet config plus where the module goes and its settings."""
  global_context_stage: int = 5
  global_context: GlobalContext = dataclasses.field(default_factory=GlobalContext)


@dataclasses.dataclass
class Backbone(backbones.Backbone):
  """official.vision's Backbone one-of, with `resnet_gc` as one more type."""
  resnet_gc: ResNetGlobalContext = dataclasses.field(
      default_factory=ResNetGlobalContext)


FIELD_PREFIX = 'task.model.backbone.resnet_gc.'


def global_context_settings(config):
  """GlobalContextSettings of a ResNetGlobalContext config.

  Raises:
    InvalidGlobalContextSettings: a value is out of range; the message names
      the field as the experiment config spells it.
  """
  if config.model_id not in MODEL_IDS:
    raise settings_lib.InvalidGlobalContextSettings(
        f'{FIELD_PREFIX}model_id: {config.model_id} has no resnet_gc '
        f'(bottleneck ResNets only: {", ".join(map(str, MODEL_IDS))})')
  if config.global_context_stage not in GLOBAL_CONTEXT_STAGES:
    raise settings_lib.InvalidGlobalContextSettings(
        f'{FIELD_PREFIX}global_context_stage: {config.global_context_stage} is not '
        'one of 4 (after C4) or 5 (after C5, before the decoder)')
  values = config.global_context.as_dict()
  return settings_lib.checked_settings(FIELD_PREFIX + 'global_context.', **values)
