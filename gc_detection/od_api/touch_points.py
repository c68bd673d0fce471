"""Every place where gc_detection changes the OD API, in one table.

Each TouchPoint names an OD API module, the attribute (or dict entry) of it
that gc_detection changes, and the change: a function of gc_detection that
takes the current value and returns the replacement (a wrapper of a
function, or the same dict with entries added). `apply(module_name)` applies a
module's changes once, right after the module is imported (the start-up hook,
gc_detection.od_api.startup_hook, calls it) or, through `register()`, when it was
imported before. Nothing in the OD API is edited; its class maps keep mapping
type names to classes.

Before any of these modules, or of COMPAT_MODULES, runs, the compatibility
shims of gc_detection.od_api.compat are applied (the OD API cannot import on
TensorFlow >= 2.16 without them). When `object_detection.protos.pipeline_pb2`
is imported, the GC extension is imported with it, so that parsing a GC
pipeline.config works whoever parses it.

This module imports nothing heavy: the start-up hook reads its table at
every interpreter start.
"""
import dataclasses
import importlib
import sys

PIPELINE_PROTO_MODULE = 'object_detection.protos.pipeline_pb2'


@dataclasses.dataclass(frozen=True)
class TouchPoint:
  """One change of an OD API module.

  module: the OD API module.
  target: its attribute changed, or "NAME[key]" for an entry of its dict NAME.
  change: 'module:function' of gc_detection; function(current) -> replacement.
  purpose: why, in a few words.
  """
  module: str
  target: str
  change: str
  purpose: str


_OD = 'gc_detection.od_api.'
TOUCH_POINTS = (
    TouchPoint('object_detection.utils.config_util', 'get_configs_from_pipeline_file',
               _OD + 'config_hooks:read_pipeline_first',
               'one parse path: errors name file, line and field'),
    TouchPoint('object_detection.utils.config_util', 'create_configs_from_pipeline_proto',
               _OD + 'config_hooks:bind_after_parse',
               'a parsed pipeline binds its GC settings to its model config'),
    TouchPoint('object_detection.utils.config_util', 'create_pipeline_proto_from_configs',
               _OD + 'config_hooks:keep_extension',
               'the GC extension survives the trainer\'s pipeline rewrite'),
    TouchPoint('object_detection.builders.model_builder',
               'FASTER_RCNN_KERAS_FEATURE_EXTRACTOR_CLASS_MAP',
               _OD + 'model_builder_hooks:add_faster_rcnn_types',
               'the Faster R-CNN GC extractor types'),
    TouchPoint('object_detection.builders.model_builder',
               'SSD_KERAS_FEATURE_EXTRACTOR_CLASS_MAP',
               _OD + 'model_builder_hooks:add_ssd_types',
               'the SSD (RetinaNet) GC extractor types'),
    TouchPoint('object_detection.builders.model_builder', 'META_ARCH_BUILDER_MAP[faster_rcnn]',
               _OD + 'model_builder_hooks:build_faster_rcnn_with_bound_settings',
               'a Faster R-CNN build takes its pipeline\'s GC settings; true shapes reach the module'),
    TouchPoint('object_detection.builders.model_builder', 'META_ARCH_BUILDER_MAP[ssd]',
               _OD + 'model_builder_hooks:build_ssd_with_bound_settings',
               'an SSD build takes its pipeline\'s GC settings; true shapes reach the module'),
    TouchPoint('object_detection.builders.optimizer_builder', 'build',
               _OD + 'optimizer_hooks:build_maybe_hybrid',
               'global_context_optimizer: the hybrid optimizer'),
    # model_lib captured config_util's and model_builder's functions in a dict
    # when it was imported.
    TouchPoint('object_detection.model_lib',
               'MODEL_BUILD_UTIL_MAP[get_configs_from_pipeline_file]',
               _OD + 'config_hooks:read_pipeline_first', 'as in config_util'),
    TouchPoint('object_detection.model_lib',
               'MODEL_BUILD_UTIL_MAP[create_pipeline_proto_from_configs]',
               _OD + 'config_hooks:keep_extension', 'as in config_util'),
    TouchPoint('object_detection.model_lib', 'MODEL_BUILD_UTIL_MAP[detection_model_fn_base]',
               _OD + 'trainer_hooks:record_training_model',
               'the trained model, for the final checkpoint'),
    TouchPoint('object_detection.model_lib_v2', 'train_loop',
               _OD + 'trainer_hooks:guard_training',
               'seed, pre-flight checks, model_dir lock, pipeline scope, divergence'),
    TouchPoint('object_detection.model_lib_v2', 'eval_continuously',
               _OD + 'trainer_hooks:evaluate_in_scope', 'the evaluator\'s pipeline scope'),
    TouchPoint('object_detection.model_lib_v2', '_compute_losses_and_predictions_dicts',
               _OD + 'trainer_hooks:guard_step_losses', 'stop at a non-finite loss'),
    TouchPoint('object_detection.model_lib_v2', 'clean_temporary_directories',
               _OD + 'trainer_hooks:save_final_checkpoint',
               'a checkpoint at the last step'),
    TouchPoint('object_detection.model_lib_v2', 'load_fine_tune_checkpoint',
               _OD + 'fine_tune_restore:restore_into_gc_models',
               'stock checkpoints into GC models; bottleneck initialisation'),
    TouchPoint('object_detection.exporter_lib_v2', 'export_inference_graph',
               _OD + 'exporter_hooks:export_in_scope', 'the exporter\'s pipeline scope'),
)
# Not changed, but the compatibility shims must be in place before they run:
# `from tensorflow.compat.v1 import estimator` at import time (inputs,
# model_lib), Pillow 9's ImageFont.getsize (visualization_utils).
COMPAT_MODULES = frozenset({
    'object_detection.inputs',
    'object_detection.model_lib',
    'object_detection.utils.visualization_utils',
})
# The modules whose import the start-up hook watches.
TRIGGER_MODULES = frozenset({point.module for point in TOUCH_POINTS} |
                            {PIPELINE_PROTO_MODULE})
# Set on every replacement: applying a change twice must not wrap twice.
_CHANGED = '_gc_detection_touch_point'


def _resolve(change):
  module_name, function_name = change.split(':')
  return getattr(importlib.import_module(module_name), function_name)


def _split_target(target):
  """('NAME', 'key') for 'NAME[key]', else (target, None)."""
  if target.endswith(']'):
    name, key = target[:-1].split('[')
    return name, key
  return target, None


def _apply_point(module, point):
  name, key = _split_target(point.target)
  current = getattr(module, name) if key is None else getattr(module, name)[key]
  if getattr(current, _CHANGED, False):
    return
  replacement = _resolve(point.change)(current)
  if replacement is not current:
    setattr(replacement, _CHANGED, True)
  if key is None:
    setattr(module, name, replacement)
  else:
    getattr(module, name)[key] = replacement


def apply(module_name):
  """Applies the changes of one imported OD API module (once)."""
  if module_name == PIPELINE_PROTO_MODULE:
    import_extension()  # no TensorFlow import for a parse
    return
  from gc_detection import user_errors  # pylint: disable=g-import-not-at-top
  from gc_detection.od_api import compat  # pylint: disable=g-import-not-at-top
  compat.apply()
  user_errors.install_for_programs()
  import_extension()
  module = sys.modules[module_name]
  for point in TOUCH_POINTS:
    if point.module == module_name:
      _apply_point(module, point)


def import_extension():
  """Imports the generated GC extension, so text_format can parse it."""
  import gc_detection.protos.global_context_pb2  # pylint: disable=g-import-not-at-top,unused-import


def register(import_modules=True):
  """Applies every change; with import_modules, imports the OD API modules first.

  Idempotent: a second call changes nothing.
  """
  from gc_detection.od_api import compat  # pylint: disable=g-import-not-at-top
  compat.apply()
  import_extension()
  for module_name in sorted({point.module for point in TOUCH_POINTS}):
    if import_modules:
      importlib.import_module(module_name)
    if module_name in sys.modules:
      apply(module_name)
