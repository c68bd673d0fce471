r"""Latency of stock-exported SavedModels, stock vs GC, measured side by side.

Builds each model of a pair from its shipped pipeline.config at a square input
size (random weights: latency does not depend on their values), saves a
checkpoint, exports it with the OD API's own `exporter_lib_v2`
(`image_tensor` input, as `exporter_main_v2` does) and times the
`serving_default` signature on uint8 images, models alternating (A, B, A, B,
...) after warm-up so machine noise hits both alike. Prints medians and the
GC / stock ratio.

Usage:
  .venv/bin/python benchmarks/inference_latency.py [--pairs=faster_rcnn_r50,retinanet_r50] \
      [--size=640] [--rounds=10] [--work_dir=/tmp/gc_latency]
"""
import os
import statistics
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

from model_pairs import PAIRS  # benchmarks/ is on sys.path when run as a script

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def _define_flags():
  """Defines the command-line flags; only when run as a program, so that
  importing this module next to other gc_detection tools cannot clash in
  absl's global flag registry."""
  global _PAIRS, _SIZE, _ROUNDS, _WARMUP, _WORK_DIR  # pylint: disable=global-statement
  _PAIRS = flags.DEFINE_list('pairs', ['faster_rcnn_r50', 'retinanet_r50'],
                             f'Pairs to compare: {", ".join(PAIRS)}.')
  _SIZE = flags.DEFINE_integer('size', 640, 'Square input size in pixels.')
  _ROUNDS = flags.DEFINE_integer('rounds', 10, 'Timed calls per model.')
  _WARMUP = flags.DEFINE_integer('warmup', 2, 'Untimed calls per model.')
  _WORK_DIR = flags.DEFINE_string('work_dir', None,
                                  'Where the exports go (default: a temp dir).')


def export(config_name, size, output_dir):
  """Exports a randomly initialised model; returns the SavedModel directory."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  from object_detection import exporter_lib_v2  # pylint: disable=g-import-not-at-top
  from object_detection.builders import model_builder  # pylint: disable=g-import-not-at-top
  from object_detection.protos import pipeline_pb2  # pylint: disable=g-import-not-at-top
  from gc_detection import config_edits  # pylint: disable=g-import-not-at-top
  from gc_detection import registry  # pylint: disable=g-import-not-at-top
  import gc_detection.protos.global_context_pb2  # pylint: disable=g-import-not-at-top,unused-import

  pipeline = pipeline_pb2.TrainEvalPipelineConfig()
  with open(os.path.join(_REPO_ROOT, 'pipeline_configs', config_name)) as f:
    text_format.Merge(f.read(), pipeline)
  config_edits.set_square_input(pipeline.model, size)

  registry.bind(pipeline)
  model = model_builder.build(pipeline.model, is_training=False)
  image = tf.zeros([1, size, size, 3])
  preprocessed, true_shapes = model.preprocess(image)
  model.postprocess(model.predict(preprocessed, true_shapes), true_shapes)
  checkpoint_dir = os.path.join(output_dir, 'checkpoint_in')
  tf.train.Checkpoint(model=model).save(os.path.join(checkpoint_dir, 'ckpt'))
  exporter_lib_v2.export_inference_graph('image_tensor', pipeline, checkpoint_dir,
                                         output_dir)
  return os.path.join(output_dir, 'saved_model')


def time_alternately(functions, rounds, warmup):
  """{name: [seconds per call]} with the functions called in turn."""
  for function in functions.values():
    for _ in range(warmup):
      function()
  times = {name: [] for name in functions}
  for _ in range(rounds):
    for name, function in functions.items():
      start = time.perf_counter()
      function()
      times[name].append(time.perf_counter() - start)
  return times


def time_exported_pair(pair, size, rounds, warmup, work_dir):
  """Exports the pair's stock and GC models and times their serving_default.

  Returns:
    {'stock': [seconds per call], 'gc': [...]}, calls alternating, on one
    (1, size, size, 3) uint8 image.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  image = tf.constant(np.random.default_rng(0).integers(0, 256, (1, size, size, 3)),
                      tf.uint8)
  detect = {}
  for label, config_name in zip(('stock', 'gc'), PAIRS[pair]):
    saved_model = export(config_name, size,
                         os.path.join(work_dir, f'{pair}_{size}_{label}'))
    signature = tf.saved_model.load(saved_model).signatures['serving_default']
    detect[label] = lambda s=signature: s(input_tensor=image)
  return time_alternately(detect, rounds, warmup)


def main(argv):
  del argv
  work_dir = _WORK_DIR.value or tempfile.mkdtemp(prefix='gc_latency_')
  size = _SIZE.value
  print(f'| model | {size}x{size} stock ms | {size}x{size} GC ms | GC / stock |')
  print('| --- | --- | --- | --- |')
  for pair in _PAIRS.value:
    times = time_exported_pair(pair, size, _ROUNDS.value, _WARMUP.value, work_dir)
    stock, gc = (statistics.median(times[k]) * 1e3 for k in ('stock', 'gc'))
    print(f'| {pair} | {stock:.0f} | {gc:.0f} | {gc / stock:.3f} |', flush=True)
  print(f'\nMedians of {_ROUNDS.value} calls per model after {_WARMUP.value} '
        f'warm-up calls, batch 1, float32, random weights; exports in {work_dir}.')


if __name__ == '__main__':
  _define_flags()
  app.run(main)
