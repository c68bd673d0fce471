r"""Builds a detector from a pipeline.config and runs training steps on generated data.

A smoke test of the whole stack on a fresh machine: it generates a small
TFRecord of coloured rectangles, reads it through the OD API's own input
pipeline (`inputs.train_input`, the TfExampleDecoder), builds the model with
`model_builder`, and runs the stock `model_lib_v2.eager_train_step`. It prints
every loss term per step and exits non-zero if a loss is not finite.

Usage:
  python -m gc_detection.tools.train_one_step \
      [--pipeline_config_path=pipeline_configs/faster_rcnn_resnet50_v1_gc_600x1024_coco.config] \
      [--num_steps=1] [--work_dir=/tmp/gc_smoke]
"""
import math
import os
import sys
import tempfile
import time
import warnings

from absl import app
from absl import flags

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
DEFAULT_CONFIG = os.path.join(
    _REPO_ROOT, 'pipeline_configs', 'faster_rcnn_resnet50_v1_gc_600x1024_coco.config')

def _define_flags():
  """Defines the command-line flags; only when run as a program, so that
  importing this module next to other gc_detection tools cannot clash in
  absl's global flag registry."""
  global _PIPELINE_CONFIG_PATH, _NUM_STEPS, _NUM_IMAGES, _SEED, _VERBOSE, _WORK_DIR  # pylint: disable=global-statement
  _PIPELINE_CONFIG_PATH = flags.DEFINE_string(
      'pipeline_config_path', DEFAULT_CONFIG, 'pipeline.config of the model.')
  _NUM_STEPS = flags.DEFINE_integer('num_steps', 1, 'Training steps to run.')
  _NUM_IMAGES = flags.DEFINE_integer('num_images', 4, 'Generated images.')
  _SEED = flags.DEFINE_integer('seed', 0, 'Seed of the data and the weights.')
  _VERBOSE = flags.DEFINE_bool(
      'verbose', False, 'Show TensorFlow and OD API warnings (deprecations).')
  _WORK_DIR = flags.DEFINE_string(
      'work_dir', None, 'Where the generated TFRecord and label map go '
      '(default: a temporary directory, removed at the end).')


def write_shapes_dataset(work_dir, seed, num_images):
  """Writes shapes.tfrecord and label_map.pbtxt; returns their paths."""
  from gc_detection.data import shapes  # pylint: disable=g-import-not-at-top
  from gc_detection import atomic_files  # pylint: disable=g-import-not-at-top
  from gc_detection.data import tf_example  # pylint: disable=g-import-not-at-top

  record_path = os.path.join(work_dir, 'shapes.tfrecord')
  label_map_path = os.path.join(work_dir, 'label_map.pbtxt')
  tf_example.write_tfrecord(record_path, shapes.generate(seed, num_images))
  atomic_files.write_text(
      label_map_path, tf_example.label_map_text(shapes.SHAPE_COLOURS))
  return record_path, label_map_path


def load_configs(pipeline_config_path, record_path, label_map_path, num_classes):
  """Reads a pipeline.config and points its training input at the generated data."""
  from object_detection.utils import config_util  # pylint: disable=g-import-not-at-top

  if not os.path.isfile(pipeline_config_path):
    raise FileNotFoundError(
        f'--pipeline_config_path: no such file: {pipeline_config_path}')
  configs = config_util.get_configs_from_pipeline_file(pipeline_config_path)
  configs = config_util.merge_external_params_with_configs(configs, kwargs_dict={
      'train_input_path': record_path,
      'label_map_path': label_map_path,
      'batch_size': 1,
      'num_classes': num_classes,
  })
  # The generated images in the order they were written.
  configs['train_input_config'].shuffle = False
  return configs


def train_steps(configs, num_steps, seed):
  """Builds the model and runs `num_steps` stock training steps.

  Returns:
    One dict per step: loss name -> float value.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from object_detection import inputs  # pylint: disable=g-import-not-at-top
  from object_detection import model_lib_v2  # pylint: disable=g-import-not-at-top
  from object_detection.builders import model_builder  # pylint: disable=g-import-not-at-top
  from object_detection.builders import optimizer_builder  # pylint: disable=g-import-not-at-top

  tf.keras.utils.set_random_seed(seed)
  train_config = configs['train_config']
  model = model_builder.build(configs['model'], is_training=True)
  dataset = inputs.train_input(
      train_config, configs['train_input_config'], configs['model'], model=model)
  optimizer, _ = optimizer_builder.build(train_config.optimizer)
  extractor = getattr(model, '_feature_extractor', None)
  if hasattr(extractor, 'gc_settings'):
    print(f'global context: {extractor.gc_settings}', flush=True)
  history = []
  for step, (features, labels) in enumerate(dataset.take(num_steps), start=1):
    started = time.perf_counter()
    losses = model_lib_v2.eager_train_step(
        model, features, labels,
        unpad_groundtruth_tensors=train_config.unpad_groundtruth_tensors,
        optimizer=optimizer,
        training_step=optimizer.iterations,
        add_regularization_loss=train_config.add_regularization_loss)
    seconds = time.perf_counter() - started
    values = {name: float(value) for name, value in losses.items()}
    history.append(values)
    terms = ', '.join(f'{name.split("/", 1)[-1]}={value:.4f}'
                      for name, value in sorted(values.items()))
    print(f'step {step}: {terms} ({seconds:.1f} s)', flush=True)
  return history


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  import gc_detection  # pylint: disable=g-import-not-at-top
  from gc_detection.data import shapes  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  gc_detection.register()
  if not _VERBOSE.value:
    # The OD API logs deprecation notices on every build and calls a
    # deprecated Keras function in every training step.
    tf.get_logger().setLevel('ERROR')
    warnings.filterwarnings('ignore', message='.*set_learning_phase.*')

  with tempfile.TemporaryDirectory(prefix='gc_smoke_') as scratch:
    work_dir = _WORK_DIR.value or scratch
    os.makedirs(work_dir, exist_ok=True)
    record_path, label_map_path = write_shapes_dataset(
        work_dir, _SEED.value, _NUM_IMAGES.value)
    try:
      configs = load_configs(_PIPELINE_CONFIG_PATH.value, record_path,
                             label_map_path, len(shapes.SHAPE_COLOURS))
    except FileNotFoundError as error:
      print(f'error: {error}', file=sys.stderr)
      return 2
    extractor = configs['model'].WhichOneof('model')
    print(f'model: {extractor} '
          f'({getattr(configs["model"], extractor).feature_extractor.type}) '
          f'from {_PIPELINE_CONFIG_PATH.value}; randomly initialised weights '
          '(no fine_tune_checkpoint is restored), batch 1', flush=True)
    history = train_steps(configs, _NUM_STEPS.value, _SEED.value)

  final = history[-1]['Loss/total_loss']
  if not all(math.isfinite(v) for step in history for v in step.values()):
    print(f'FAILED: a loss is not finite: {history[-1]}', file=sys.stderr)
    return 1
  print(f'OK: {len(history)} training step(s), total loss {final:.4f}')
  return 0


if __name__ == '__main__':
  _define_flags()
  app.run(main)
