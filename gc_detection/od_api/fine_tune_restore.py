"""The stock fine-tune restore into GC models, then the paper's initialisation.

`model_lib_v2.load_fine_tune_checkpoint` asserts that every object under what
it restores was in the checkpoint, which the new GC variables never are. For a
GC model the restore reads the extractor's stock-shaped view instead
(GlobalContextExtractor.stock_view_swaps: the same layers without the GC
layer), so the assertion still covers every stock variable. A detection
checkpoint of a GC model, or a "full" one, is restored whole.

Then, with initialization BOTTLENECK and unless training resumes from a
checkpoint in model_dir (whose restore comes next in the trainer and holds the
trained module), the module is copied from the restored backbone. The stock
train_loop restores `fine_tune_checkpoint` first and model_dir's latest
checkpoint after, so this is the one place that runs "after the pretrained
weights are in, but not on resume".
"""
import functools
import logging

from gc_detection.layers import checkpoint_keys
from gc_detection.layers import global_context_settings as settings_lib
from gc_detection.od_api import model_builder_hooks
from gc_detection.od_api.training import training_run

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
  run = training_run.current()
  latest = tf.train.latest_checkpoint(run.model_dir) if run is not None else None
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


def restore_into_gc_models(load_fine_tune_checkpoint):
  """A touch-point change of model_lib_v2.load_fine_tune_checkpoint."""
  @functools.wraps(load_fine_tune_checkpoint)
  def load_into_gc_model(model, checkpoint_path, checkpoint_type,
                         checkpoint_version, run_model_on_dummy_input,
                         input_dataset, unpad_groundtruth_tensors):
    from object_detection import model_lib_v2  # pylint: disable=g-import-not-at-top
    extractor = model_builder_hooks.gc_extractor_of(model)
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
                                      checkpoint_keys.has_module_weights(checkpoint_path)))
    swaps = ([] if extractor is None or restored_global_context
             else extractor.stock_view_swaps(model, checkpoint_type))
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
  return load_into_gc_model
