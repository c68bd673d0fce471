"""The hybrid optimizer through the OD API's optimizer_builder.

A pipeline whose GC extension sets `global_context_optimizer` trains the
module with that optimizer and every other variable with
`train_config.optimizer` (training.hybrid_optimizer). optimizer_builder.build
sees only train_config.optimizer: `build_maybe_hybrid` finds the pipeline it
belongs to (pipeline_binding) and, through it, the GC extractor built from
that pipeline, whose module the hybrid needs.
"""
import functools
import importlib.util
import logging

from gc_detection.od_api import extension_settings
from gc_detection.od_api import pipeline_binding
from gc_detection.od_api.training import training_run

ConfigError = extension_settings.ConfigError
EXTENSION_NAME = extension_settings.EXTENSION_NAME


def _hybrid_config(binding):
  extension = binding.extension if binding is not None else None
  if extension is None or not extension.HasField('global_context_optimizer'):
    return None
  return extension.global_context_optimizer


def check_hybrid_optimizer_available(pipeline):
  """Before training: a hybrid config needs tensorflow-addons (TF <= 2.15 only).

  Checked when training starts, not when the config is parsed, so that a model
  trained with the hybrid optimizer can still be exported and evaluated on a
  stack without tensorflow-addons.
  """
  extension = extension_settings.extension_of(pipeline)
  if extension is None or not extension.HasField('global_context_optimizer'):
    return
  if importlib.util.find_spec('tensorflow_addons') is None:
    raise ConfigError(
        f'{EXTENSION_NAME} global_context_optimizer: the hybrid optimizer needs '
        'tensorflow-addons (MultiOptimizer), which supports TensorFlow <= 2.15 '
        'and is not installed in this environment (the tf220 stack has none). '
        'Use the two-phase schedule (training_phases) or the default tf215 stack '
        '(scripts/setup.sh).')


def build_maybe_hybrid(build_optimizer):
  """A touch-point change of optimizer_builder.build."""
  @functools.wraps(build_optimizer)
  def build(optimizer_config, global_step=None):
    built = _build(build_optimizer, optimizer_config, global_step)
    run = training_run.current()
    if run is not None and run.optimizer is None:
      run.optimizer, run.global_step = built[0], global_step
    return built
  return build


def _build(build_optimizer, optimizer_config, global_step):
  binding = pipeline_binding.binding_of_optimizer_config(optimizer_config)
  global_context_config = _hybrid_config(binding)
  if global_context_config is None:
    return build_optimizer(optimizer_config, global_step=global_step)
  extractor = binding.extractor()
  if extractor is None:
    raise ConfigError(f'{EXTENSION_NAME} global_context_optimizer: build the model '
                      'of this pipeline before its optimizer (the optimizer '
                      'needs the global-context layer)')
  from gc_detection.od_api.training import hybrid_optimizer  # pylint: disable=g-import-not-at-top
  other, summary_vars = build_optimizer(optimizer_config, global_step=global_step)
  global_context_optimizer, _ = build_optimizer(global_context_config,
                                                global_step=global_step)
  logging.info('gc_detection: %s for the global-context module, %s for every '
               'other variable', type(global_context_optimizer).__name__,
               type(other).__name__)
  return hybrid_optimizer.GlobalContextMultiOptimizer(
      global_context_optimizer, other, extractor.global_context), summary_vars
