"""The pipeline.config extension of gc_detection, read into GlobalContextSettings.

A pipeline.config selects a GC feature extractor by its `type` and may hold,
at its top level, the extension message of protos/global_context.proto:

    [gc_detection.protos.global_context] { num_heads: 8 ... }

This module reads that message (absent: the paper's defaults) into the frozen
GlobalContextSettings the extractors take, and checks every value, naming the
field, the value and what is expected. It knows nothing of model building.
"""
from gc_detection import user_errors
from gc_detection.layers import global_context_settings as settings_lib

EXTENSION_NAME = '[gc_detection.protos.global_context]'
ConfigError = user_errors.GlobalContextConfigError

def extension_descriptor():
  """The `global_context` extension field (imports the generated module)."""
  from gc_detection.protos import global_context_pb2  # pylint: disable=g-import-not-at-top
  return global_context_pb2.global_context


def extension_of(pipeline):
  """The pipeline's GlobalContext message, or None when it has none."""
  extension = extension_descriptor()
  return pipeline.Extensions[extension] if pipeline.HasExtension(extension) else None


def settings_from_extension(message):
  """GlobalContextSettings of a GlobalContext message (None: the defaults).

  Raises:
    GlobalContextConfigError: a value is out of range; the message names the
      field.
  """
  if message is None:
    return settings_lib.GlobalContextSettings()
  try:
    return settings_lib.checked_settings(
        EXTENSION_NAME + ' ',
        num_heads=message.num_heads,
        num_layers=message.num_layers,
        bottleneck_ratio=message.bottleneck_ratio,
        use_residual=message.use_residual,
        attention_dropout=message.attention_dropout,
        chunk_threshold=message.chunk_threshold,
        chunk_size=message.chunk_size,
        initialization=message.Initialization.Name(message.initialization),
        source_block=message.source_block,
        fold_batch_norm=message.fold_batch_norm,
        ignore_padding=message.ignore_padding)
  except settings_lib.InvalidGlobalContextSettings as error:
    raise ConfigError(str(error)) from None


def check_hybrid_optimizer(optimizer, global_context_optimizer):
  """Raises GlobalContextConfigError for settings the hybrid cannot combine.

  Args:
    optimizer: train_config.optimizer (object_detection.protos.Optimizer).
    global_context_optimizer: the extension's global_context_optimizer.
  """
  for field, config in (('train_config.optimizer', optimizer),
                        (f'{EXTENSION_NAME} global_context_optimizer',
                         global_context_optimizer)):
    if config.WhichOneof('optimizer') is None:
      raise ConfigError(f'{field}: no optimizer set (e.g. adam_optimizer {{ ... }})')
    if config.use_moving_average:
      raise ConfigError(
          f'{field}: use_moving_average is not supported with '
          'global_context_optimizer (the moving-average wrapper needs a single '
          'optimizer); set use_moving_average: false')
