"""GlobalContextAttention's weights as TensorFlow object-based checkpoints name them.

A weight `block_<i>/<name>` of the layer is saved under a key ending in
`block_<i>.S<name>/.ATTRIBUTES/VARIABLE_VALUE` ('.S' escapes the weight
name's '/'), whatever model holds the layer; optimizer slots add
`/.OPTIMIZER_SLOT/...` after it.
"""
import re

WEIGHT_NAMES = ('qkv_kernel', 'qkv_bias', 'output_kernel', 'output_bias')
_WEIGHT_KEY = re.compile(
    r'(?:^|/)(block_\d+)\.S(' + '|'.join(WEIGHT_NAMES) + r')/\.ATTRIBUTES/VARIABLE_VALUE$')


def module_weight_name(key):
  """'block_<i>/<name>' of a checkpoint key of a module weight, else None."""
  match = _WEIGHT_KEY.search(key)
  return f'{match.group(1)}/{match.group(2)}' if match else None


def module_weights(checkpoint_path):
  """{'block_0/qkv_kernel': array, ...}: the module's weights in a checkpoint.

  Raises whatever tf.train.load_checkpoint raises for a bad path.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  reader = tf.train.load_checkpoint(checkpoint_path)
  weights = {}
  for key in reader.get_variable_to_shape_map():
    name = module_weight_name(key)
    if name:
      weights[name] = reader.get_tensor(key)
  return weights


def has_module_weights(checkpoint_path):
  """True if the checkpoint holds a GlobalContextAttention's weights; False
  also for a path that is not a readable checkpoint."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    keys = [key for key, _ in tf.train.list_variables(checkpoint_path)]
  except (tf.errors.OpError, ValueError):
    return False
  return any(module_weight_name(key) for key in keys)
