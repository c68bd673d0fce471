"""Compatibility shims between the pinned OD API stack and current TensorFlow.

tf-slim 1.1.0 (its last release) calls `control_flow_ops.case` and
`control_flow_ops.cond`. TensorFlow 2.13 moved them to
`tensorflow.python.ops.control_flow_case` and `tensorflow.python.ops.cond`, so
the OD API's TFRecord decoder (`TfExampleDecoder`, used by the stock trainer
and evaluator) fails with `AttributeError: ... has no attribute 'case'`.
`apply()` puts the two names back on `control_flow_ops`; it edits no installed
file and changes nothing when the names already exist.

TensorFlow 2.16 dropped `tf.compat.v1.estimator` (tensorflow-estimator ended
at 2.15), but the OD API's `model_lib` and `inputs`, which the TF2 trainer
imports through `model_lib_v2`, still run
`from tensorflow.compat.v1 import estimator` at import time. Their TF2 code paths
use none of it. `install_estimator_stand_in()` puts a small module there whose
`ModeKeys` equals the Estimator's and whose every other name raises an error
saying the TF1 Estimator path (`model_main.py`) needs TensorFlow <= 2.15. It has
to run before those modules are imported (the start-up hook does that).

Pillow 10 removed `ImageFont.getsize`, which the OD API's visualization_utils
calls to draw a box's label (gc_detection.od_api.inference's pictures, the stock
evaluator's image summaries): `restore_pillow_getsize()` puts it back on
Pillow's font classes, as (right, bottom) of `getbbox` - what Pillow 9's
getsize returned. Pillow < 10 has no wheels for Python 3.12.

tensorflow-io's last release (0.37.1) is built for TensorFlow 2.16; the OD API's
model_builder imports it (for DeepMAC's rgb_to_lab, pure Python). On later
TensorFlow its native libraries fail to load and it warns so at every import;
`quiet_tensorflow_io()` drops those two warnings, nothing else.

TensorFlow >= 2.16 makes Keras 3 its `tf.keras` unless TF_USE_LEGACY_KERAS=1 is
set before TensorFlow is imported (the start-up hook's .pth sets it there);
the OD API needs Keras 2 (tf-keras). `check_legacy_keras()` turns the OD API's
obscure failure on Keras 3 into an error that says so.

NumPy >= 1.24 removed `np.bool`/`np.float`, which the OD API's Pascal VOC and
Open Images metrics still use. No shim is applied for that: COCO metrics are
the supported set (see WORKSPACE.md).
"""

import os

_applied = False


def restore_control_flow_ops_aliases():
  """Re-exports `case` and `cond` on tensorflow's `control_flow_ops` module.

  Returns:
    The names that were added (empty when TensorFlow still has them).
  """
  from tensorflow.python.ops import control_flow_ops  # pylint: disable=g-import-not-at-top

  added = []
  if not hasattr(control_flow_ops, 'case'):
    from tensorflow.python.ops import control_flow_case  # pylint: disable=g-import-not-at-top
    control_flow_ops.case = control_flow_case.case
    added.append('case')
  if not hasattr(control_flow_ops, 'cond'):
    from tensorflow.python.ops import cond  # pylint: disable=g-import-not-at-top
    control_flow_ops.cond = cond.cond
    added.append('cond')
  return added


class _EstimatorModeKeys:
  """The values of tf.estimator.ModeKeys (tensorflow-estimator 2.15)."""
  TRAIN = 'train'
  EVAL = 'eval'
  PREDICT = 'infer'


def _estimator_stand_in():
  import types  # pylint: disable=g-import-not-at-top

  module = types.ModuleType(
      'tensorflow.compat.v1.estimator',
      'Stand-in for tf.compat.v1.estimator, set by gc_detection.od_api.compat: '
      'TensorFlow >= 2.16 has no Estimator.')
  module.ModeKeys = _EstimatorModeKeys

  def __getattr__(name):
    if name.startswith('__'):
      raise AttributeError(name)
    raise AttributeError(
        f'tf.compat.v1.estimator.{name}: TensorFlow >= 2.16 has no Estimator '
        '(tensorflow-estimator ended at 2.15). The OD API\'s TF1 path '
        '(model_main.py, model_lib.create_estimator_and_inputs) needs the '
        'TF 2.15 stack; use model_main_tf2 (scripts/train.sh) instead.')

  module.__getattr__ = __getattr__
  module._gc_detection_stand_in = True  # pylint: disable=protected-access
  return module


def install_estimator_stand_in():
  """Gives tf.compat.v1 an `estimator` when TensorFlow has none (>= 2.16).

  Returns:
    True when the stand-in was installed, False when TensorFlow has its own.
  """
  import sys  # pylint: disable=g-import-not-at-top
  import tensorflow.compat.v1 as tf_v1  # pylint: disable=g-import-not-at-top

  try:
    getattr(tf_v1, 'estimator')
    return False
  except AttributeError:
    pass
  stand_in = _estimator_stand_in()
  setattr(tf_v1, 'estimator', stand_in)
  sys.modules.setdefault(stand_in.__name__, stand_in)
  return True


def _getsize(font, text, *args, **kwargs):
  """Pillow 9's FreeTypeFont/ImageFont.getsize: the text's (width, height)
  from the origin, i.e. the right and bottom of its bounding box."""
  _, _, right, bottom = font.getbbox(text, *args, **kwargs)
  return right, bottom


def restore_pillow_getsize():
  """Re-adds `getsize` to Pillow's font classes (removed in Pillow 10).

  Returns:
    The names of the classes it was added to (empty on Pillow < 10).
  """
  from PIL import ImageFont  # pylint: disable=g-import-not-at-top

  added = []
  for name in ('ImageFont', 'FreeTypeFont', 'TransposedFont'):
    font_class = getattr(ImageFont, name, None)
    if font_class is not None and not hasattr(font_class, 'getsize') and hasattr(
        font_class, 'getbbox'):
      font_class.getsize = _getsize
      added.append(name)
  return added


def quiet_tensorflow_io():
  """Ignores tensorflow-io's two "unable to load its .so" import warnings."""
  import warnings  # pylint: disable=g-import-not-at-top
  warnings.filterwarnings(
      'ignore', category=UserWarning, module=r'tensorflow_io\.',
      message=r'(unable to load libtensorflow_io_plugins\.so|'
              r'file system plugins are not loaded)')


def check_legacy_keras():
  """Raises RuntimeError when tf.keras is Keras 3 (the OD API cannot run on it)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  version = str(getattr(tf.keras, '__version__', ''))
  if version.startswith('3.'):
    raise RuntimeError(
        f'tf.keras is Keras {version}, but the TF2 Object Detection API needs '
        'Keras 2 (tf-keras). Set TF_USE_LEGACY_KERAS=1 before TensorFlow is '
        'imported (the gc_detection start-up hook does that once '
        '`python -m gc_detection.cli.install_startup_hook` has run in this '
        f'environment; TF_USE_LEGACY_KERAS is now '
        f'{os.environ.get("TF_USE_LEGACY_KERAS")!r}).')


def apply():
  """Applies every shim once per process; later calls do nothing."""
  global _applied
  if not _applied:
    check_legacy_keras()
    restore_control_flow_ops_aliases()
    install_estimator_stand_in()
    restore_pillow_getsize()
    quiet_tensorflow_io()
    _applied = True
