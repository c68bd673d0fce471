"""The one place where gc_detection touches the OD API's globals.

What it does, once per process (`register()`; repeated calls do nothing):

1. Registers the GC feature extractors under their `type` names in
   `model_builder.FASTER_RCNN_KERAS_FEATURE_EXTRACTOR_CLASS_MAP` and
   `model_builder.SSD_KERAS_FEATURE_EXTRACTOR_CLASS_MAP`.
2. Carries the `[gc_detection.protos.global_context]` block of a parsed
   pipeline to the extractor of *that* pipeline's model:

   - When a pipeline is parsed, `bind(pipeline)` converts the block (or, if
     absent, the defaults) into a GlobalContextSettings and binds it to the
     pipeline's meta-architecture message object (`pipeline.model.faster_rcnn`
     or `pipeline.model.ssd`). Parsing is seen on both of the OD API's paths:
     `config_util.create_configs_from_pipeline_proto` (trainer, evaluator,
     anything using `get_configs_from_pipeline_file`) and
     `exporter_lib_v2.export_inference_graph` (the exporter parses the file
     itself and hands the pipeline over).
   - `model_builder.build` dispatches through `META_ARCH_BUILDER_MAP`; the
     wrapped entry looks up the settings bound to the message it is given and
     makes them current (a ContextVar) for the duration of that build only.
     The extractor factory in the class map reads them.

   Two pipelines parsed in one process are two message objects, so each model
   gets its own settings; nothing outlives the build that used it.
3. Lets the stock fine-tune restore of a checkpoint written by the stock
   extractor fill every stock variable of a GC model, and then runs the
   paper's bottleneck initialisation of the module (not on resume).
4. Builds the hybrid optimizer (global_context_optimizer for the module,
   train_config.optimizer for the rest) when the block asks for it, through
   `optimizer_builder.build`.
5. Keeps the block when the trainer rewrites the pipeline: the trainer saves
   `create_pipeline_proto_from_configs(configs)` to model_dir, which knows
   only the stock fields; the wrapper puts the bound block back.
6. Applies the compatibility shims (gc_detection.compat).

A model built from a message that was never bound (a pipeline assembled by
hand) gets the defaults, with a warning that says how to bind it.
"""
import contextlib
import contextvars
import difflib
import functools
import inspect
import logging
import os
import re
import sys
import weakref

from gc_detection import user_errors
from gc_detection.models import global_context_settings as settings_lib

BLOCK_NAME = '[gc_detection.protos.global_context]'
ConfigError = user_errors.GlobalContextConfigError

_FASTER_RCNN_EXTRACTORS = {
    'faster_rcnn_resnet50_gc': 'FasterRCNNResnet50GCKerasFeatureExtractor',
    'faster_rcnn_resnet101_gc': 'FasterRCNNResnet101GCKerasFeatureExtractor',
    'faster_rcnn_resnet152_gc': 'FasterRCNNResnet152GCKerasFeatureExtractor',
}
_SSD_EXTRACTORS = {
    'ssd_resnet50_v1_fpn_gc': 'SSDResNet50V1FpnGCKerasFeatureExtractor',
    'ssd_resnet101_v1_fpn_gc': 'SSDResNet101V1FpnGCKerasFeatureExtractor',
    'ssd_resnet152_v1_fpn_gc': 'SSDResNet152V1FpnGCKerasFeatureExtractor',
}
# meta architecture -> (name of its class map in model_builder, GC types).
_META_ARCHITECTURES = {
    'faster_rcnn': ('FASTER_RCNN_KERAS_FEATURE_EXTRACTOR_CLASS_MAP',
                    _FASTER_RCNN_EXTRACTORS),
    'ssd': ('SSD_KERAS_FEATURE_EXTRACTOR_CLASS_MAP', _SSD_EXTRACTORS),
}

_WRAPPED = '_gc_detection_wrapped'
_current_settings = contextvars.ContextVar('gc_detection_settings', default=None)
# The model_dir of the model_lib_v2.train_loop running in this context, if any.
_training_model_dir = contextvars.ContextVar('gc_detection_model_dir', default=None)
# The final_checkpoint.TrainingRun of that train_loop.
_training_run = contextvars.ContextVar('gc_detection_training_run', default=None)
# id(meta-architecture message) -> (message, settings, block or None). The
# message is held so that its id cannot be reused while the entry exists.
_bindings = {}
# id(train_config.optimizer message) -> (that message, the GC block's
# global_context_optimizer, the meta-architecture message of the same pipeline).
_optimizer_bindings = {}
# id(meta-architecture message) -> (message, weakref to the GC extractor of
# the model last built from it).
_built_extractors = {}


def gc_types():
  """Every registered GC feature-extractor type name, sorted."""
  return sorted(name for _, types in _META_ARCHITECTURES.values() for name in types)


# Values no sensible model has; most likely typos, and each would exhaust the
# memory of any machine (16 blocks at 1024 px keep 16 x 268 MB of attention
# weights for the backward pass; a chunk of 65536 queries over as many keys
# is 68 GB).
_UPPER_LIMITS = {
    'num_layers': (16, 'each stacked block keeps its attention weights for the '
                   'backward pass'),
    'chunk_size': (65536, 'a chunk holds chunk_size x H*W attention weights per '
                   'head'),
}


def settings_from_block(block):
  """Converts a GlobalContext message into GlobalContextSettings.

  Raises:
    ValueError: a value is out of range; the message names the field.
  """
  from gc_detection.protos import global_context_pb2  # pylint: disable=g-import-not-at-top

  for field in ('num_heads', 'num_layers', 'bottleneck_ratio', 'chunk_size'):
    value = getattr(block, field)
    if value <= 0:
      raise ConfigError(f'{BLOCK_NAME} {field}: must be a positive integer, '
                       f'got {value}')
  for field, (largest, why) in _UPPER_LIMITS.items():
    value = getattr(block, field)
    if value > largest:
      raise ConfigError(f'{BLOCK_NAME} {field}: must be at most {largest}, got '
                       f'{value} ({why})')
  if block.chunk_threshold < 0:
    raise ConfigError(f'{BLOCK_NAME} chunk_threshold: must be >= 0 (0 = never '
                     f'chunk), got {block.chunk_threshold}')
  if not 0.0 <= block.attention_dropout < 1.0:
    raise ConfigError(f'{BLOCK_NAME} attention_dropout: must be in [0, 1), got '
                     f'{block.attention_dropout}')
  initialization = global_context_pb2.GlobalContext.Initialization.Name(
      block.initialization).lower()
  return settings_lib.GlobalContextSettings(
      num_heads=block.num_heads,
      num_layers=block.num_layers,
      bottleneck_ratio=block.bottleneck_ratio,
      use_residual=block.use_residual,
      attention_dropout=block.attention_dropout,
      chunk_threshold=block.chunk_threshold or None,
      chunk_size=block.chunk_size,
      initialization=initialization,
      source_block=block.source_block,
      fold_batch_norm=block.fold_batch_norm)


def bind(pipeline):
  """Binds a parsed TrainEvalPipelineConfig's GC settings to its model.

  Call this for a pipeline you parse yourself before passing `pipeline.model`
  to `model_builder.build`; the OD API's own trainer, evaluator and exporter
  are bound automatically.

  Raises:
    ValueError: the block holds an invalid value, or the pipeline has a GC
      block but its feature extractor is not a GC type.
  """
  from gc_detection.protos import global_context_pb2  # pylint: disable=g-import-not-at-top

  extension = global_context_pb2.global_context
  block = pipeline.Extensions[extension] if pipeline.HasExtension(extension) else None
  meta_architecture = pipeline.model.WhichOneof('model')
  message = getattr(pipeline.model, meta_architecture) if meta_architecture else None
  extractor_type = (message.feature_extractor.type
                    if meta_architecture in _META_ARCHITECTURES else None)
  is_gc = extractor_type in gc_types()
  if block is not None and not is_gc:
    raise ConfigError(
        f'pipeline.config has a {BLOCK_NAME} block, but its feature extractor '
        f'type {extractor_type or meta_architecture!r} is not a global-context '
        f'type; use one of {", ".join(gc_types())} or remove the block')
  if not is_gc:
    return None
  settings = (settings_lib.GlobalContextSettings() if block is None
              else settings_from_block(block))
  _bindings[id(message)] = (message, settings, block)
  if block is not None and block.HasField('global_context_optimizer'):
    _check_hybrid_optimizer(pipeline.train_config.optimizer,
                            block.global_context_optimizer)
    optimizer = pipeline.train_config.optimizer
    _optimizer_bindings[id(optimizer)] = (optimizer, block.global_context_optimizer,
                                          message)
  return settings


def _check_hybrid_optimizer(optimizer, global_context_optimizer):
  """Raises ValueError for optimizer settings the hybrid cannot combine."""
  for field, config in (('train_config.optimizer', optimizer),
                        (f'{BLOCK_NAME} global_context_optimizer',
                         global_context_optimizer)):
    if config.WhichOneof('optimizer') is None:
      raise ConfigError(f'{field}: no optimizer set (e.g. adam_optimizer {{ ... }})')
    if config.use_moving_average:
      raise ConfigError(
          f'{field}: use_moving_average is not supported with '
          'global_context_optimizer (the moving-average wrapper needs a single '
          'optimizer); set use_moving_average: false')


def _check_hybrid_optimizer_available(optimizer):
  """Before training: a hybrid config needs tensorflow-addons (TF <= 2.15 only).

  Checked when training starts, not when the config is parsed, so that a model
  trained with the hybrid optimizer can still be exported and evaluated on a
  stack without tensorflow-addons.
  """
  import importlib.util  # pylint: disable=g-import-not-at-top
  if _entry_for(_optimizer_bindings, optimizer) is None:
    return
  if importlib.util.find_spec('tensorflow_addons') is None:
    raise ConfigError(
        f'{BLOCK_NAME} global_context_optimizer: the hybrid optimizer needs '
        'tensorflow-addons (MultiOptimizer), which supports TensorFlow <= 2.15 '
        'and is not installed in this environment (the tf220 stack has none). '
        'Use the two-phase schedule (training_phases) or the default tf215 stack '
        '(scripts/setup.sh).')


def _entry_for(bindings, message):
  """bindings' entry for this very message object, or None (an id can be reused
  by a later object once the first is gone)."""
  entry = bindings.get(id(message))
  if entry is not None and entry[0] is message:
    return entry
  return None


def _bound(message):
  return _entry_for(_bindings, message)


def _check_extractor_type(meta_architecture, message):
  """Raises a ValueError listing the GC types for an unknown extractor type."""
  from object_detection.builders import model_builder  # pylint: disable=g-import-not-at-top

  map_name, _ = _META_ARCHITECTURES[meta_architecture]
  known = getattr(model_builder, map_name)
  extractor_type = message.feature_extractor.type
  if extractor_type not in known:
    close = difflib.get_close_matches(extractor_type, list(known), n=3)
    hint = f' Did you mean {" or ".join(close)}?' if close else ''
    raise ConfigError(
        f'Unknown {meta_architecture} feature_extractor type {extractor_type!r}.'
        f'{hint} Global-context types: {", ".join(gc_types())}.')


def _wrap_meta_arch_builder(meta_architecture, build_meta_arch):
  """Wraps a META_ARCH_BUILDER_MAP entry so its build sees its own settings."""

  @functools.wraps(build_meta_arch)
  def build_with_settings(message, *args, **kwargs):
    _check_extractor_type(meta_architecture, message)
    entry = _bound(message)
    token = _current_settings.set(entry[1] if entry else None)
    try:
      model = build_meta_arch(message, *args, **kwargs)
      extractor = _gc_extractor(model)
      if extractor is not None:
        _built_extractors[id(message)] = (message, weakref.ref(extractor))
      return model
    except settings_lib.InvalidGlobalContextSettings as error:
      raise ConfigError(f'pipeline.config {BLOCK_NAME} {error}') from error
    finally:
      _current_settings.reset(token)

  setattr(build_with_settings, _WRAPPED, True)
  return build_with_settings


class _ExtractorFactory:
  """Stands in the class map for a GC extractor class; adds gc_settings."""

  def __init__(self, type_name, extractor_class):
    self.type_name = type_name
    self.extractor_class = extractor_class

  def __call__(self, *args, **kwargs):
    settings = _current_settings.get()
    if settings is None:
      logging.warning(
          'gc_detection: building %s from a model config whose pipeline was '
          'not bound; using the default global-context settings. If the '
          'pipeline has a %s block, call gc_detection.registry.bind(pipeline) '
          'before model_builder.build(pipeline.model).', self.type_name,
          BLOCK_NAME)
      settings = settings_lib.GlobalContextSettings()
    return self.extractor_class(*args, gc_settings=settings, **kwargs)


def _wrap_create_configs(create_configs):
  @functools.wraps(create_configs)
  def create_configs_and_bind(pipeline_config):
    configs = create_configs(pipeline_config)
    bind(pipeline_config)
    return configs
  setattr(create_configs_and_bind, _WRAPPED, True)
  return create_configs_and_bind


def _wrap_create_pipeline_proto(create_pipeline_proto):
  @functools.wraps(create_pipeline_proto)
  def create_pipeline_proto_with_block(configs):
    from gc_detection.protos import global_context_pb2  # pylint: disable=g-import-not-at-top
    pipeline = create_pipeline_proto(configs)
    model = configs['model']
    meta_architecture = model.WhichOneof('model')
    entry = _bound(getattr(model, meta_architecture)) if meta_architecture else None
    if entry is not None and entry[2] is not None:
      pipeline.Extensions[global_context_pb2.global_context].CopyFrom(entry[2])
    return pipeline
  setattr(create_pipeline_proto_with_block, _WRAPPED, True)
  return create_pipeline_proto_with_block


def _wrap_export(export_inference_graph):
  @functools.wraps(export_inference_graph)
  def bind_and_export(input_type, pipeline_config, *args, **kwargs):
    bind(pipeline_config)
    return export_inference_graph(input_type, pipeline_config, *args, **kwargs)
  setattr(bind_and_export, _WRAPPED, True)
  return bind_and_export


def _stock_view_swaps(model, checkpoint_type):
  """What to swap so that a GC model looks stock to a fine-tune restore.

  Returns a list of (object, attribute, stock-shaped stand-in); empty for
  stock models and for restores the GC variables are not part of.
  """
  from gc_detection.models import faster_rcnn_resnet_gc_feature_extractor as frcnn  # pylint: disable=g-import-not-at-top
  from gc_detection.models import ssd_resnet_v1_fpn_gc_feature_extractor as ssd  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  extractor = getattr(model, '_feature_extractor', None)
  if isinstance(extractor, frcnn.FasterRCNNResnetGCKerasFeatureExtractor):
    # "classification" restores the full ResNet, which has no GC layer.
    if checkpoint_type == 'detection':
      return [(model, '_feature_extractor_for_proposal_features',
               extractor.stock_proposal_model)]
  elif isinstance(extractor, ssd.SSDResNetV1FpnGCKerasFeatureExtractor):
    # "classification" restores the stock backbone alone (no GC layer in it).
    if checkpoint_type == 'detection':
      children = dict(extractor._trackable_children(save_type='checkpoint'))  # pylint: disable=protected-access
      del children['global_context']
      return [(model, '_feature_extractor', tf.train.Checkpoint(**children))]
  return []


_GLOBAL_CONTEXT_KEY = re.compile(r'block_\d+\.Sqkv_kernel/')


def _gc_extractor(model):
  """The model's GC feature extractor, or None for a stock model."""
  from gc_detection.models import faster_rcnn_resnet_gc_feature_extractor as frcnn  # pylint: disable=g-import-not-at-top
  from gc_detection.models import ssd_resnet_v1_fpn_gc_feature_extractor as ssd  # pylint: disable=g-import-not-at-top
  extractor = getattr(model, '_feature_extractor', None)
  if isinstance(extractor, (frcnn.FasterRCNNResnetGCKerasFeatureExtractor,
                            ssd.SSDResNetV1FpnGCKerasFeatureExtractor)):
    return extractor
  return None


def _has_global_context_variables(checkpoint_path):
  """True if the checkpoint holds GC module weights (a GC detection model's)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    names = [name for name, _ in tf.train.list_variables(checkpoint_path)]
  except (tf.errors.OpError, ValueError):
    return False  # The stock restore reports the bad path.
  return any(_GLOBAL_CONTEXT_KEY.search(name) for name in names)


def _initialize_after_restore(extractor, checkpoint_path, checkpoint_type,
                              restored_global_context):
  """Runs the paper's bottleneck initialisation, unless training resumes.

  Args:
    extractor: the model's GC feature extractor.
    checkpoint_path: the fine_tune_checkpoint just restored.
    checkpoint_type: its fine_tune_checkpoint_type.
    restored_global_context: the restore already filled the module's weights
      (a GC detection checkpoint, or type "full").
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  settings = extractor.gc_settings
  if settings.initialization != settings_lib.BOTTLENECK:
    return
  if restored_global_context:
    logging.info('gc_detection: the global-context weights were restored from '
                 '%s; no bottleneck initialisation.', checkpoint_path)
    return
  model_dir = _training_model_dir.get()
  latest = tf.train.latest_checkpoint(model_dir) if model_dir else None
  if latest:
    logging.info('gc_detection: training resumes from %s, which holds the '
                 'trained global-context weights; no bottleneck '
                 'initialisation.', latest)
    return
  extractor.initialize_global_context_from_backbone()
  logging.info('gc_detection: global-context module initialised from %s of the '
               'backbone restored from %s (%s checkpoint), batch norm %s.',
               extractor.source_block, checkpoint_path, checkpoint_type,
               'folded in' if settings.fold_batch_norm else 'not folded')


def _wrap_load_fine_tune_checkpoint(load_fine_tune_checkpoint):
  """Restores stock checkpoints into GC models, then initialises the module.

  The stock restore asserts that every object under what it restores was in
  the checkpoint, which the new GC variables never are. For a GC model the
  restore reads stock-shaped views instead (the same layers without the GC
  layer), so the assertion still covers every stock variable. A detection
  checkpoint of a GC model is restored whole.

  Then, with initialization BOTTLENECK and unless training resumes from a
  checkpoint in model_dir (whose restore comes next in the trainer and holds
  the trained module), the module is copied from the restored backbone.
  """
  @functools.wraps(load_fine_tune_checkpoint)
  def load_into_gc_model(model, checkpoint_path, checkpoint_type,
                         checkpoint_version, run_model_on_dummy_input,
                         input_dataset, unpad_groundtruth_tensors):
    from object_detection import model_lib_v2  # pylint: disable=g-import-not-at-top
    extractor = _gc_extractor(model)
    must_build = run_model_on_dummy_input or (
        extractor is not None and not extractor.global_context.built and
        extractor.gc_settings.initialization == settings_lib.BOTTLENECK)
    if must_build:
      if input_dataset is None:
        raise ValueError('gc_detection: the global-context module is not built '
                         'yet, so it cannot be initialised from the restored '
                         'backbone: run the model once (or pass input_dataset) '
                         'before load_fine_tune_checkpoint')
      model_lib_v2._ensure_model_is_built(  # pylint: disable=protected-access
          model, input_dataset, unpad_groundtruth_tensors)
    restored_global_context = extractor is not None and (
        checkpoint_type == 'full' or (checkpoint_type == 'detection' and
                                      _has_global_context_variables(checkpoint_path)))
    swaps = [] if restored_global_context else _stock_view_swaps(model, checkpoint_type)
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in swaps]
    # object.__setattr__: change what restore_from_objects reads without
    # changing what Keras tracks (and so what the trainer checkpoints).
    for owner, name, stand_in in swaps:
      object.__setattr__(owner, name, stand_in)
    try:
      result = load_fine_tune_checkpoint(
          model, checkpoint_path, checkpoint_type, checkpoint_version, False,
          input_dataset, unpad_groundtruth_tensors)
    finally:
      for owner, name, original in originals:
        object.__setattr__(owner, name, original)
    if extractor is not None:
      _initialize_after_restore(extractor, checkpoint_path, checkpoint_type,
                                restored_global_context)
    return result
  setattr(load_into_gc_model, _WRAPPED, True)
  return load_into_gc_model


def _wrap_train_loop(train_loop):
  """Checks the pipeline's files first, locks model_dir, reports divergence.

  Before training: gc_detection.training.preflight (TFRecords, label map,
  fine_tune_checkpoint), then model_dir's trainer lock (model_dir_lock).
  During: the fine-tune restore can see the run's model_dir, and the run's
  model, optimizer and step are recorded (final_checkpoint.TrainingRun) so
  that the last step is checkpointed. A non-finite loss (divergence_guard)
  ends the loop with TrainingDivergedError instead of TensorFlow's
  assertion error.
  """
  @functools.wraps(train_loop)
  def checked_train_loop(pipeline_config_path, model_dir, config_override=None,
                         *args, **kwargs):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from object_detection.utils import config_util  # pylint: disable=g-import-not-at-top
    from gc_detection.training import divergence_guard  # pylint: disable=g-import-not-at-top
    from gc_detection.training import preflight  # pylint: disable=g-import-not-at-top

    from gc_detection.training import final_checkpoint  # pylint: disable=g-import-not-at-top
    from gc_detection.training import model_dir_lock  # pylint: disable=g-import-not-at-top

    _seed_from_environment()
    configs = config_util.get_configs_from_pipeline_file(
        pipeline_config_path, config_override=config_override)
    _check_hybrid_optimizer_available(configs['train_config'].optimizer)
    strategy = tf.distribute.get_strategy()
    preflight.check_training_pipeline(
        configs, num_input_pipelines=_input_pipelines(strategy))
    arguments = inspect.signature(train_loop).bind(
        pipeline_config_path, model_dir, config_override, *args, **kwargs)
    arguments.apply_defaults()
    run = final_checkpoint.TrainingRun(
        model_dir, arguments.arguments.get('checkpoint_max_to_keep', 7))
    # Only the process that writes model_dir's checkpoints holds its lock
    # (non-chief workers write to temporary directories of their own).
    lock = (model_dir_lock.ModelDirLock(model_dir)
            if strategy.extended.should_checkpoint else contextlib.nullcontext())
    with lock:
      tokens = _training_model_dir.set(model_dir), _training_run.set(run)
      try:
        return train_loop(pipeline_config_path, model_dir, config_override,
                          *args, **kwargs)
      except tf.errors.InvalidArgumentError as error:
        if not divergence_guard.is_divergence(error):
          raise
        raise divergence_guard.diverged_error(error, model_dir) from None
      finally:
        _training_model_dir.reset(tokens[0])
        _training_run.reset(tokens[1])
  setattr(checked_train_loop, _WRAPPED, True)
  return checked_train_loop


SEED_VARIABLE = 'GC_DETECTION_SEED'


def _seed_from_environment():
  """Seeds Python, NumPy and TensorFlow from $GC_DETECTION_SEED, if set.

  The stock trainer seeds nothing: its weights, input shuffling, augmentation
  and proposal sampling differ from run to run. With the variable set, two
  runs of the same config start from the same weights and see the same
  batches (up to the float summation order of multi-threaded kernels).
  """
  value = os.environ.get(SEED_VARIABLE, '').strip()
  if not value:
    return
  try:
    seed = int(value)
  except ValueError:
    raise ConfigError(f'{SEED_VARIABLE}: expected an integer seed, got {value!r}') from None
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.keras.utils.set_random_seed(seed)
  logging.info('gc_detection: Python, NumPy and TensorFlow seeded with %d (%s)', seed,
               SEED_VARIABLE)


def _input_pipelines(strategy):
  """How many workers read input under `strategy` (each its own file shard)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  resolver = getattr(strategy, 'cluster_resolver', None)
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or not resolver:
    return 1
  cluster = resolver.cluster_spec().as_dict()
  return max(1, len(cluster.get('worker', [])) + len(cluster.get('chief', [])))


def _wrap_compute_losses(compute_losses_and_predictions):
  """Guards every training step's losses (gc_detection.training.divergence_guard).

  Only steps of a training loop are guarded: their training_step is the
  global step variable. Evaluation passes None, the stock model-building dummy
  step a Python 0.
  """
  @functools.wraps(compute_losses_and_predictions)
  def compute_guarded(model, features, labels, training_step=None, **kwargs):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from gc_detection.training import divergence_guard  # pylint: disable=g-import-not-at-top

    losses_dict, predictions = compute_losses_and_predictions(
        model, features, labels, training_step=training_step, **kwargs)
    if isinstance(training_step, tf.Variable) or tf.is_tensor(training_step):
      losses_dict = divergence_guard.guard_losses(losses_dict, training_step)
    return losses_dict, predictions
  setattr(compute_guarded, _WRAPPED, True)
  return compute_guarded


def _wrap_get_configs(get_configs_from_pipeline_file):
  """Reads pipeline.config through pipeline_errors.read_pipeline first.

  A missing, binary or unparsable file, or one with two GC blocks, becomes a
  PipelineConfigError naming file, line and field; then the stock function
  parses the same (now known good) text.
  """
  @functools.wraps(get_configs_from_pipeline_file)
  def get_configs_naming_errors(pipeline_config_path, config_override=None,
                                *args, **kwargs):
    from gc_detection import pipeline_errors  # pylint: disable=g-import-not-at-top
    pipeline_errors.read_pipeline(pipeline_config_path)
    if config_override:
      pipeline_errors.check_pipeline_text('--config_override', config_override)
    return get_configs_from_pipeline_file(pipeline_config_path, config_override,
                                          *args, **kwargs)
  setattr(get_configs_naming_errors, _WRAPPED, True)
  return get_configs_naming_errors


def _wrap_optimizer_build(build_optimizer):
  """Builds the hybrid optimizer for a pipeline with global_context_optimizer.

  optimizer_builder.build sees only train_config.optimizer; bind() linked that
  message to the block's global_context_optimizer and to the model config,
  whose last built GC extractor supplies the module.
  """
  @functools.wraps(build_optimizer)
  def build_maybe_hybrid(optimizer_config, global_step=None):
    built = _build_maybe_hybrid(optimizer_config, global_step)
    run = _training_run.get()
    if run is not None and run.optimizer is None:
      run.optimizer, run.global_step = built[0], global_step
    return built

  def _build_maybe_hybrid(optimizer_config, global_step):
    entry = _entry_for(_optimizer_bindings, optimizer_config)
    if entry is None:
      return build_optimizer(optimizer_config, global_step=global_step)
    _, global_context_config, model_message = entry
    built = _built_extractors.get(id(model_message))
    extractor = built[1]() if built and built[0] is model_message else None
    if extractor is None:
      raise ConfigError(f'{BLOCK_NAME} global_context_optimizer: build the model '
                       'of this pipeline before its optimizer (the optimizer '
                       'needs the global-context layer)')
    from gc_detection.training import hybrid_optimizer  # pylint: disable=g-import-not-at-top
    other, summary_vars = build_optimizer(optimizer_config, global_step=global_step)
    global_context_optimizer, _ = build_optimizer(global_context_config,
                                                  global_step=global_step)
    logging.info('gc_detection: %s for the global-context module, %s for every '
                 'other variable', type(global_context_optimizer).__name__,
                 type(other).__name__)
    return hybrid_optimizer.GlobalContextMultiOptimizer(
        global_context_optimizer, other, extractor.global_context), summary_vars
  setattr(build_maybe_hybrid, _WRAPPED, True)
  return build_maybe_hybrid


def _wrap_build_training_model(build_model):
  """Records the model a stock train_loop builds (final_checkpoint.TrainingRun)."""
  @functools.wraps(build_model)
  def build_and_record(*args, **kwargs):
    model = build_model(*args, **kwargs)
    run = _training_run.get()
    if run is not None and run.model is None:
      run.model = model
    return model
  setattr(build_and_record, _WRAPPED, True)
  return build_and_record


def _wrap_clean_temporary_directories(clean_temporary_directories):
  """Checkpoints the last step of a finished stock train_loop (final_checkpoint).

  train_loop calls this right after its last step, first with the directory
  its CheckpointManager saved to, before a non-chief worker's directory is
  removed.
  """
  @functools.wraps(clean_temporary_directories)
  def save_final_then_clean(strategy, filepath):
    from gc_detection.training import final_checkpoint  # pylint: disable=g-import-not-at-top
    run = _training_run.get()
    if run is not None and not run.finished:
      final_checkpoint.save_if_behind(run, strategy, filepath)
    return clean_temporary_directories(strategy, filepath)
  setattr(save_final_then_clean, _WRAPPED, True)
  return save_final_then_clean


def _replace(namespace, name, wrap, is_dict=False):
  """Wraps namespace[name] (or namespace.name) once."""
  current = namespace[name] if is_dict else getattr(namespace, name)
  if getattr(current, _WRAPPED, False):
    return
  wrapped = wrap(current)
  if is_dict:
    namespace[name] = wrapped
  else:
    setattr(namespace, name, wrapped)


def _patch_model_builder(model_builder):
  from gc_detection.models import faster_rcnn_resnet_gc_feature_extractor as frcnn  # pylint: disable=g-import-not-at-top
  from gc_detection.models import ssd_resnet_v1_fpn_gc_feature_extractor as ssd  # pylint: disable=g-import-not-at-top
  modules = {'faster_rcnn': frcnn, 'ssd': ssd}
  for meta_architecture, (map_name, types) in _META_ARCHITECTURES.items():
    class_map = getattr(model_builder, map_name)
    for type_name, class_name in types.items():
      if not isinstance(class_map.get(type_name), _ExtractorFactory):
        class_map[type_name] = _ExtractorFactory(
            type_name, getattr(modules[meta_architecture], class_name))
    _replace(model_builder.META_ARCH_BUILDER_MAP, meta_architecture,
             functools.partial(_wrap_meta_arch_builder, meta_architecture),
             is_dict=True)


def _patch_config_util(config_util):
  _replace(config_util, 'get_configs_from_pipeline_file', _wrap_get_configs)
  _replace(config_util, 'create_configs_from_pipeline_proto', _wrap_create_configs)
  _replace(config_util, 'create_pipeline_proto_from_configs',
           _wrap_create_pipeline_proto)


def _patch_model_lib(model_lib):
  # model_lib captured config_util's functions in a dict at import time.
  _replace(model_lib.MODEL_BUILD_UTIL_MAP, 'create_pipeline_proto_from_configs',
           _wrap_create_pipeline_proto, is_dict=True)
  _replace(model_lib.MODEL_BUILD_UTIL_MAP, 'get_configs_from_pipeline_file',
           _wrap_get_configs, is_dict=True)
  _replace(model_lib.MODEL_BUILD_UTIL_MAP, 'detection_model_fn_base',
           _wrap_build_training_model, is_dict=True)


def _patch_exporter_lib_v2(exporter_lib_v2):
  _replace(exporter_lib_v2, 'export_inference_graph', _wrap_export)


def _patch_model_lib_v2(model_lib_v2):
  _replace(model_lib_v2, 'load_fine_tune_checkpoint', _wrap_load_fine_tune_checkpoint)
  _replace(model_lib_v2, 'train_loop', _wrap_train_loop)
  _replace(model_lib_v2, '_compute_losses_and_predictions_dicts', _wrap_compute_losses)
  _replace(model_lib_v2, 'clean_temporary_directories',
           _wrap_clean_temporary_directories)


def _patch_optimizer_builder(optimizer_builder):
  _replace(optimizer_builder, 'build', _wrap_optimizer_build)


# OD API module -> how it is patched. Each is patched when it is imported (the
# start-up hook in gc_detection._autoregister) or by register() if it already is.
PATCHES = {
    'object_detection.utils.config_util': _patch_config_util,
    'object_detection.builders.model_builder': _patch_model_builder,
    'object_detection.model_lib': _patch_model_lib,
    'object_detection.exporter_lib_v2': _patch_exporter_lib_v2,
    'object_detection.model_lib_v2': _patch_model_lib_v2,
    'object_detection.builders.optimizer_builder': _patch_optimizer_builder,
}


def on_module_imported(module_name):
  """Patches one OD API module right after it was imported (start-up hook)."""
  from gc_detection import compat  # pylint: disable=g-import-not-at-top
  compat.apply()
  import gc_detection.protos.global_context_pb2  # pylint: disable=g-import-not-at-top,unused-import
  user_errors.install_for_programs()
  PATCHES[module_name](sys.modules[module_name])


def register(import_modules=True):
  """Applies every patch; with import_modules, imports the OD API modules first.

  Idempotent: a second call changes nothing.
  """
  from gc_detection import compat  # pylint: disable=g-import-not-at-top
  compat.apply()
  import gc_detection.protos.global_context_pb2  # pylint: disable=g-import-not-at-top,unused-import
  user_errors.install_for_programs()
  for module_name, patch in PATCHES.items():
    if import_modules:
      __import__(module_name)
    if module_name in sys.modules:
      patch(sys.modules[module_name])
