"""Which pipeline's global-context settings a GC model gets when it is built.

The GC settings are a top-level extension of pipeline.config; the OD API's
`model_builder.build(model_config)` sees only `pipeline.model`. A
PipelineBinding ties a parsed pipeline to the model configs built from it,
in one of two ways:

- `pipeline_scope(pipeline)` binds it inside a `with` statement.
  The stock trainer (`model_lib_v2.train_loop`), evaluator
  (`model_lib_v2.eval_continuously`) and exporter
  (`exporter_lib_v2.export_inference_graph`) each run inside one (opened by
  gc_detection's hooks of those functions); code that builds models by hand
  opens one itself:

      with gc_detection.od_api.pipeline_scope(pipeline):
        model = model_builder.build(pipeline.model, is_training=True)

  Inside, the pipeline's model config, or a copy of it, builds with the
  pipeline's settings.
- `bind(pipeline)`, which every parse through `config_util` does (so the
  tutorials' `configs = config_util.get_configs_from_pipeline_file(path)`
  then `model_builder.build(configs['model'], ...)` works), remembers the
  pipeline in the current context among the RECENTLY_BOUND latest ones:
  that very model config object (edited in place or not) builds with the
  pipeline's settings. A copy of it does not: the extension lives outside
  the model config, so two pipelines with equal models may hold different
  settings.

A GC model config matched by neither builds with the default settings and a
warning that says how to bind it. Open scopes and recent bindings live in one
context variable (per thread and asyncio task) and hold at most the open
scopes plus RECENTLY_BOUND pipelines: nothing grows with the number of
pipelines parsed or models built in a process.
"""
import contextlib
import contextvars
import dataclasses
import logging
import weakref
from typing import Any, Optional, Tuple

from gc_detection.layers import global_context_settings as settings_lib
from gc_detection.od_api import extension_settings

RECENTLY_BOUND = 8
EXTENSION_NAME = extension_settings.EXTENSION_NAME


@dataclasses.dataclass(eq=False)
class PipelineBinding:
  """One parsed pipeline and what its GC model is built with.

  Holding `pipeline` (and the sub-messages below) keeps their Python objects
  alive, so the same message accessed again is the same object: a model
  config is matched by identity.
  """
  pipeline: Any  # TrainEvalPipelineConfig
  model_config: Any  # pipeline.model
  meta_architecture_config: Any  # pipeline.model.faster_rcnn or .ssd
  optimizer_config: Any  # pipeline.train_config.optimizer
  extension: Optional[Any]  # the GlobalContext message, None when absent
  settings: settings_lib.GlobalContextSettings
  # The GC feature extractor last built from this pipeline (a weak reference).
  built_extractor: Optional[weakref.ref] = None

  def extractor(self):
    """The GC feature extractor last built from this pipeline, or None."""
    return self.built_extractor() if self.built_extractor is not None else None


@dataclasses.dataclass(frozen=True)
class _Bindings:
  scopes: Tuple[PipelineBinding, ...] = ()  # open scopes, innermost first
  recent: Tuple[PipelineBinding, ...] = ()  # bind()'s, latest first

  def all(self):
    return self.scopes + self.recent


_bindings = contextvars.ContextVar('gc_detection_pipeline_bindings', default=_Bindings())
# While model_builder builds a GC model: the binding it was found to belong to,
# or _UNBOUND.
_UNBOUND = object()
_building = contextvars.ContextVar('gc_detection_building', default=None)


def _gc_types():
  from gc_detection.od_api import model_builder_hooks  # pylint: disable=g-import-not-at-top
  return model_builder_hooks.gc_types()


def make_binding(pipeline):
  """The PipelineBinding of a parsed TrainEvalPipelineConfig, or None.

  None for a pipeline whose model is not a GC type (and has no extension).

  Raises:
    GlobalContextConfigError: the extension holds an invalid value, combines
      optimizers the hybrid cannot, or sits in a pipeline whose feature
      extractor is not a GC type.
  """
  extension = extension_settings.extension_of(pipeline)
  meta_architecture = pipeline.model.WhichOneof('model')
  meta_config = getattr(pipeline.model, meta_architecture) if meta_architecture else None
  extractor_type = (meta_config.feature_extractor.type
                    if meta_architecture in ('faster_rcnn', 'ssd') else None)
  is_gc = extractor_type in _gc_types()
  if extension is not None and not is_gc:
    raise extension_settings.ConfigError(
        f'pipeline.config has a {EXTENSION_NAME} extension, but its feature '
        f'extractor type {extractor_type or meta_architecture!r} is not a '
        f'global-context type; use one of {", ".join(_gc_types())} or remove '
        'the extension')
  if not is_gc:
    return None
  settings = extension_settings.settings_from_extension(extension)
  if extension is not None and extension.HasField('global_context_optimizer'):
    extension_settings.check_hybrid_optimizer(pipeline.train_config.optimizer,
                                              extension.global_context_optimizer)
  return PipelineBinding(
      pipeline=pipeline, model_config=pipeline.model,
      meta_architecture_config=meta_config,
      optimizer_config=pipeline.train_config.optimizer, extension=extension,
      settings=settings)


def bind(pipeline):
  """Remembers a parsed pipeline in this context; returns its settings.

  What every parse through config_util does. Returns None for a pipeline
  without a GC model.

  Raises:
    GlobalContextConfigError: see make_binding.
  """
  binding = make_binding(pipeline)
  if binding is None:
    return None
  current = _bindings.get()
  kept = tuple(other for other in current.recent if other.pipeline is not pipeline)
  _bindings.set(dataclasses.replace(
      current, recent=((binding,) + kept)[:RECENTLY_BOUND]))
  return binding.settings


@contextlib.contextmanager
def pipeline_scope(pipeline):
  """Builds the pipeline's GC model (or a copy's) with its settings inside.

  Yields:
    The pipeline's GlobalContextSettings, or None for a pipeline without a
    GC model.

  Raises:
    GlobalContextConfigError: see make_binding.
  """
  binding = make_binding(pipeline)
  if binding is None:
    yield None
    return
  current = _bindings.get()
  token = _bindings.set(dataclasses.replace(current, scopes=(binding,) + current.scopes))
  try:
    yield binding.settings
  finally:
    _bindings.reset(token)


def _find(config, attribute):
  """The binding whose `attribute` is `config`: by identity anywhere, then by
  content in the open scopes (innermost first)."""
  bindings = _bindings.get()
  for binding in bindings.all():
    if getattr(binding, attribute) is config:
      return binding
  for binding in bindings.scopes:
    if getattr(binding, attribute) == config:
      return binding
  return None


def binding_of_model_config(model_config):
  """The binding a DetectionModel message belongs to, or None."""
  return _find(model_config, 'model_config')


def binding_of_meta_architecture_config(meta_config):
  """The binding a FasterRcnn / Ssd message belongs to, or None."""
  return _find(meta_config, 'meta_architecture_config')


def binding_of_optimizer_config(optimizer_config):
  """The binding a train_config.optimizer message belongs to, or None."""
  return _find(optimizer_config, 'optimizer_config')


@contextlib.contextmanager
def building(meta_config):
  """Marks a model_builder build of `meta_config` in progress; yields its binding.

  Inside, GC extractors constructed without explicit settings get the
  binding's (current_build_settings).
  """
  binding = binding_of_meta_architecture_config(meta_config)
  token = _building.set(binding or _UNBOUND)
  try:
    yield binding
  finally:
    _building.reset(token)


def current_build_settings(extractor_name):
  """The settings for a GC extractor constructed now without explicit ones.

  Inside a model_builder build of a bound model config: the pipeline's. In a
  build of an unbound one: the defaults, with a warning saying how to bind
  it. Outside any build (the class constructed directly): the defaults.
  """
  binding = _building.get()
  if binding is None:
    return settings_lib.GlobalContextSettings()
  if binding is _UNBOUND:
    logging.warning(
        'gc_detection: building %s from a model config of no bound pipeline; '
        'using the default global-context settings. If the pipeline has a %s '
        'extension, build inside `with gc_detection.od_api.pipeline_scope('
        'pipeline):` (or parse it with config_util, or call '
        'gc_detection.od_api.bind(pipeline) first).', extractor_name, EXTENSION_NAME)
    return settings_lib.GlobalContextSettings()
  return binding.settings


def bound_state_sizes():
  """{structure: entries} of everything this module keeps (for tests)."""
  bindings = _bindings.get()
  return {'scopes': len(bindings.scopes), 'recent': len(bindings.recent)}
