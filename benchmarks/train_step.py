r"""Training step time of stock vs GC detectors, measured side by side.

Builds each model from a shipped pipeline.config (random weights), resized to
a fixed square input, and times the OD API's own training step
(`model_lib_v2.eager_train_step`, momentum SGD for every model so that only
the architecture differs) wrapped in a tf.function, as the stock trainer runs
it. Models are timed in interleaved rounds (A, B, A, B, ...; benchmarks/harness.py)
after warm-up so machine noise hits all of them alike; medians and the
per-round GC / stock ratio (median [min, max]) are printed.

Usage:
  .venv/bin/python benchmarks/train_step.py [--pair=faster_rcnn_r50|retinanet_r50] \
      [--size=640] [--batch=1] [--rounds=5]
"""
import os
import time

from absl import app
from absl import flags
import numpy as np

# benchmarks/ is on sys.path when run as a script.
import harness
from model_pairs import PAIRS

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _define_flags():
  """Defines the command-line flags; only when run as a program, so that
  importing this module next to other gc_detection tools cannot clash in
  absl's global flag registry."""
  flags.DEFINE_integer('size', 640, 'Square input size in pixels.')
  flags.DEFINE_integer('batch', 1, 'Images per step.')
  flags.DEFINE_integer('rounds', 5, 'Timed steps per model.')
  flags.DEFINE_integer('warmup', 2, 'Untimed steps per model (tracing).')
  flags.DEFINE_enum('pair', 'faster_rcnn_r50', list(PAIRS), 'Models to compare.')


def load_model_config(config_name, size):
  """The model config of a shipped pipeline.config, resized to size x size."""
  from object_detection.utils import config_util  # pylint: disable=g-import-not-at-top
  from gc_detection.od_api import config_edits  # pylint: disable=g-import-not-at-top

  configs = config_util.get_configs_from_pipeline_file(
      os.path.join(_REPO_ROOT, 'pipeline_configs', config_name))
  config_edits.set_square_input(configs['model'], size)
  return configs['model']


def build_train_step(config_name, size, batch):
  """Returns a zero-argument function that runs one training step."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from object_detection.builders import model_builder  # pylint: disable=g-import-not-at-top

  model = model_builder.build(load_model_config(config_name, size), is_training=True)
  rng = np.random.default_rng(0)
  images = tf.constant(rng.uniform(0, 255, (batch, size, size, 3)), tf.float32)
  return train_step_on(model, model.preprocess(images)[0],
                       tf.constant([[size, size, 3]] * batch))


def train_step_on(model, preprocessed, true_image_shapes):
  """A zero-argument function running one training step of `model` on the
  (N, H, W, 3) preprocessed images with their (N, 3) true shapes."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from object_detection import model_lib_v2  # pylint: disable=g-import-not-at-top
  from object_detection.core import standard_fields as fields  # pylint: disable=g-import-not-at-top

  batch = int(preprocessed.shape[0])
  # The same optimizer for every model (the configs differ: Adam for GC), and
  # a tiny learning rate so random weights stay finite over the timed steps.
  optimizer = tf.keras.optimizers.SGD(learning_rate=1e-7, momentum=0.9)
  features = {
      fields.InputDataFields.image: preprocessed,
      fields.InputDataFields.true_image_shape: true_image_shapes,
  }
  boxes = tf.constant([[[0.1, 0.1, 0.5, 0.4], [0.4, 0.5, 0.9, 0.9]]] * batch,
                      tf.float32)
  labels = {
      fields.InputDataFields.num_groundtruth_boxes: tf.constant([2] * batch),
      fields.InputDataFields.groundtruth_boxes: boxes,
      fields.InputDataFields.groundtruth_classes: tf.one_hot([[1, 5]] * batch, 90),
      fields.InputDataFields.groundtruth_weights: tf.ones([batch, 2]),
  }

  @tf.function
  def step():
    return model_lib_v2.eager_train_step(
        model, features, labels, unpad_groundtruth_tensors=True,
        optimizer=optimizer, training_step=optimizer.iterations)

  def run():
    return step()['Loss/total_loss'].numpy()
  run.tf_function = step  # for FLOP counts of the traced step
  return run


def _finite_loss(name, step):
  """A call of step() that fails on a non-finite loss."""
  def call():
    loss = step()
    assert np.isfinite(loss), f'{name}: loss {loss}'
  return call


def main(argv):
  del argv
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.get_logger().setLevel('ERROR')
  values = flags.FLAGS
  stock_config, gc_config = PAIRS[values.pair]
  steps = {'stock': build_train_step(stock_config, values.size, values.batch),
           'gc': build_train_step(gc_config, values.size, values.batch)}
  calls = {name: _finite_loss(name, step) for name, step in steps.items()}
  started = time.perf_counter()
  harness.time_alternately(calls, rounds=0, warmup=values.warmup)
  print(f'warm-up (tracing) {time.perf_counter() - started:.1f} s', flush=True)
  times = harness.time_alternately(calls, values.rounds)
  medians = harness.medians(times)
  print(f'\n{values.pair}, {values.size}x{values.size}, batch {values.batch}, '
        f'{values.rounds} interleaved rounds, {os.cpu_count()} CPU cores')
  for name, seconds in times.items():
    print(f'  {name:5s} median {medians[name]:.3f} s/step  '
          f'(min {min(seconds):.3f}, max {max(seconds):.3f})')
  print(f'  GC / stock per round: median [min, max] = '
        f'{harness.paired_ratio(times["gc"], times["stock"])}')


if __name__ == '__main__':
  _define_flags()
  app.run(main)
