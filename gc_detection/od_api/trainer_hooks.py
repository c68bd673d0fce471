"""gc_detection around the OD API's stock trainer and evaluator (model_lib_v2).

train_loop (`guard_training`), before the first step: seeds from
GC_DETECTION_SEED; reads the pipeline (one error naming file, line and field);
refuses a hybrid optimizer without tensorflow-addons; checks the input files,
label map and fine_tune_checkpoint (preflight); takes model_dir's trainer lock
(model_dir_lock). Then it runs the stock loop inside the pipeline's scope
(pipeline_binding) and a TrainingRun (training_run) that the hooks below fill
in. A non-finite loss (divergence_guard) ends it with TrainingDivergedError.

eval_continuously (`evaluate_in_scope`) runs inside the pipeline's scope.

Inside the loop: every training step's losses are guarded
(`guard_step_losses`), the model built for training is recorded
(`record_training_model`), and when the loop has finished its last step a
checkpoint of it is saved if the stock loop did not save one
(`save_final_checkpoint`).
"""
import contextlib
import functools
import inspect

from gc_detection.od_api import pipeline_binding
from gc_detection.od_api import pipeline_files
from gc_detection.od_api.training import training_run


def _input_pipelines(strategy):
  """How many workers read input under `strategy` (each its own file shard)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  resolver = getattr(strategy, 'cluster_resolver', None)
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or not resolver:
    return 1
  cluster = resolver.cluster_spec().as_dict()
  return max(1, len(cluster.get('worker', [])) + len(cluster.get('chief', [])))


def guard_training(train_loop):
  """A touch-point change of model_lib_v2.train_loop."""
  @functools.wraps(train_loop)
  def guarded_train_loop(pipeline_config_path, model_dir, config_override=None,
                         *args, **kwargs):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from object_detection.utils import config_util  # pylint: disable=g-import-not-at-top
    from gc_detection.od_api import optimizer_hooks  # pylint: disable=g-import-not-at-top
    from gc_detection.od_api.training import divergence_guard  # pylint: disable=g-import-not-at-top
    from gc_detection.od_api.training import model_dir_lock  # pylint: disable=g-import-not-at-top
    from gc_detection.od_api.training import preflight  # pylint: disable=g-import-not-at-top
    from gc_detection.od_api.training import seeding  # pylint: disable=g-import-not-at-top

    seeding.seed_from_environment()
    pipeline = pipeline_files.read_pipeline(pipeline_config_path, config_override)
    configs = config_util.get_configs_from_pipeline_file(
        pipeline_config_path, config_override=config_override)
    optimizer_hooks.check_hybrid_optimizer_available(pipeline)
    strategy = tf.distribute.get_strategy()
    preflight.check_training_pipeline(
        configs, num_input_pipelines=_input_pipelines(strategy))
    arguments = inspect.signature(train_loop).bind(
        pipeline_config_path, model_dir, config_override, *args, **kwargs)
    arguments.apply_defaults()
    run = training_run.TrainingRun(
        model_dir, arguments.arguments.get('checkpoint_max_to_keep', 7))
    # Only the process that writes model_dir's checkpoints holds its lock
    # (non-chief workers write to temporary directories of their own).
    lock = (model_dir_lock.ModelDirLock(model_dir)
            if strategy.extended.should_checkpoint else contextlib.nullcontext())
    with lock, pipeline_binding.pipeline_scope(pipeline), training_run.running(run):
      try:
        return train_loop(pipeline_config_path, model_dir, config_override,
                          *args, **kwargs)
      except tf.errors.InvalidArgumentError as error:
        if not divergence_guard.is_divergence(error):
          raise
        raise divergence_guard.diverged_error(error, model_dir) from None
  return guarded_train_loop


def evaluate_in_scope(eval_continuously):
  """A touch-point change of model_lib_v2.eval_continuously."""
  @functools.wraps(eval_continuously)
  def scoped_eval_continuously(*args, **kwargs):
    arguments = inspect.signature(eval_continuously).bind(*args, **kwargs)
    pipeline = pipeline_files.read_pipeline(
        arguments.arguments['pipeline_config_path'],
        arguments.arguments.get('config_override'))
    with pipeline_binding.pipeline_scope(pipeline):
      return eval_continuously(*args, **kwargs)
  return scoped_eval_continuously


def guard_step_losses(compute_losses_and_predictions):
  """A touch-point change of model_lib_v2._compute_losses_and_predictions_dicts.

  Only steps of a training loop are guarded: their training_step is the
  global step variable. Evaluation passes None, the stock model-building dummy
  step a Python 0.
  """
  @functools.wraps(compute_losses_and_predictions)
  def compute_guarded(model, features, labels, training_step=None, **kwargs):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from gc_detection.od_api.training import divergence_guard  # pylint: disable=g-import-not-at-top

    losses_dict, predictions = compute_losses_and_predictions(
        model, features, labels, training_step=training_step, **kwargs)
    if isinstance(training_step, tf.Variable) or tf.is_tensor(training_step):
      losses_dict = divergence_guard.guard_losses(losses_dict, training_step)
    return losses_dict, predictions
  return compute_guarded


def record_training_model(build_model):
  """A touch-point change of model_lib.MODEL_BUILD_UTIL_MAP['detection_model_fn_base']."""
  @functools.wraps(build_model)
  def build_and_record(*args, **kwargs):
    model = build_model(*args, **kwargs)
    run = training_run.current()
    if run is not None and run.model is None:
      run.model = model
    return model
  return build_and_record


def save_final_checkpoint(clean_temporary_directories):
  """A touch-point change of model_lib_v2.clean_temporary_directories.

  train_loop calls it right after its last step, first with the directory its
  CheckpointManager saved to, before a non-chief worker's directory is
  removed.
  """
  @functools.wraps(clean_temporary_directories)
  def save_final_then_clean(strategy, filepath):
    from gc_detection.od_api.training import final_checkpoint  # pylint: disable=g-import-not-at-top
    run = training_run.current()
    if run is not None and not run.finished:
      final_checkpoint.save_if_behind(run, strategy, filepath)
    return clean_temporary_directories(strategy, filepath)
  return save_final_then_clean
