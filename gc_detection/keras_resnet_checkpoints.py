"""keras.applications ResNet weights and atomic checkpoint writing, for every adapter.

Both adapters turn the ImageNet ResNets of tf.keras.applications into their
own backbone's checkpoint (gc_detection.od_api.keras_resnet_conversion,
gc_detection.model_garden.keras_resnet_conversion). What they share is here:
loading the keras model and writing a checkpoint so that a crash never leaves
a partial one.
"""
import glob
import os
import shutil
import tempfile


DEPTHS = (50, 101, 152)


def check_depth_and_weights(depth, weights):
  """Raises ValueError / FileNotFoundError naming the bad flag and value."""
  if depth not in DEPTHS:
    raise ValueError(f'--depth: must be one of {", ".join(map(str, DEPTHS))}, '
                     f'got {depth!r}')
  if weights not in (None, 'none', 'imagenet') and not os.path.isfile(weights):
    raise FileNotFoundError(f"--weights: not 'imagenet' or 'none', and no such "
                            f'file: {weights}')


def build_keras_resnet(depth, weights):
  """tf.keras.applications.ResNet{depth}(include_top=False) with `weights`.

  Input [batch, height, width, 3] BGR minus the ImageNet means; output C5,
  [batch, height / 32, width / 32, 2048].
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  weights = None if weights in (None, 'none') else weights
  constructor = getattr(tf.keras.applications, f'ResNet{depth}')
  try:
    return constructor(include_top=False, weights=weights)
  except Exception as error:  # pylint: disable=broad-except
    # keras' download raises a bare Exception; a bad .h5 ValueError or OSError.
    hint = (f'; offline, fetch resnet{depth}_weights_tf_dim_ordering_tf_kernels_'
            'notop.h5 elsewhere and pass its path' if weights == 'imagenet' else '')
    raise ValueError(f'--weights: cannot load {weights!r} into ResNet{depth} '
                     f'(include_top=False): {error}{hint}') from error


def checkpoint_files(path):
  """The files of the checkpoint `path` (a prefix such as .../ckpt-0)."""
  return sorted(glob.glob(glob.escape(path) + '.data-*')) + [
      f for f in [path + '.index'] if os.path.exists(f)]


def refuse_to_overwrite(path, overwrite):
  """Returns the files of the checkpoint at `path`; raises if not overwrite."""
  existing = checkpoint_files(path)
  if existing and not overwrite:
    raise FileExistsError(f'--output_prefix: a checkpoint exists at {path} '
                          '(pass --overwrite to replace it)')
  return existing


def save_atomically(model, path, overwrite=False, key='feature_extractor'):
  """Writes tf.train.Checkpoint(<key>=model) to the prefix `path`.

  The checkpoint is written into a temporary directory next to `path`, then
  moved into place, the .index (which makes it a checkpoint) last: a crash
  leaves no partial checkpoint at `path`.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  existing = refuse_to_overwrite(path, overwrite)
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  scratch = tempfile.mkdtemp(prefix=f'.{os.path.basename(path)}.tmp-',
                             dir=directory)
  moved = []
  try:
    checkpoint = tf.train.Checkpoint(**{key: model})
    # Restoring creates the restoring Checkpoint's save_counter, and the OD
    # API's assert_existing_objects_matched() requires it in the file;
    # write() (unlike save()) does not create it.
    checkpoint.save_counter  # pylint: disable=pointless-statement
    written = checkpoint.write(os.path.join(scratch, os.path.basename(path)))
    for stale in reversed(existing):  # the old .index first
      os.remove(stale)
    for name in checkpoint_files(written):
      moved.append(os.path.join(directory, os.path.basename(name)))
      os.replace(name, moved[-1])
  except BaseException:
    for name in moved:
      if os.path.exists(name):
        os.remove(name)
    raise
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  return path
