r"""Latency of stock-exported SavedModels, stock vs GC, measured side by side.

Builds each model of a pair from its shipped pipeline.config at a square input
size (random weights: latency does not depend on their values), saves a
checkpoint, exports it with the OD API's own `exporter_lib_v2`
(`image_tensor` input, as `exporter_main_v2` does) and times the
`serving_default` signature on uint8 images, models in interleaved rounds (A,
B, A, B, ...; benchmarks/harness.py) after warm-up so machine noise hits both
alike. Prints medians and the per-round GC / stock ratio: median [min, max].

Usage:
  .venv/bin/python benchmarks/inference_latency.py [--pairs=faster_rcnn_r50,retinanet_r50] \
      [--size=640] [--rounds=10] [--work_dir=/tmp/gc_latency]
"""
import os
import tempfile

from absl import app
from absl import flags
import numpy as np

# benchmarks/ is on sys.path when run as a script.
import harness
from model_pairs import PAIRS
from gc_detection.reports.markdown import markdown_table

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _define_flags():
  """Defines the command-line flags; only when run as a program, so that
  importing this module next to other gc_detection tools cannot clash in
  absl's global flag registry."""
  flags.DEFINE_list('pairs', ['faster_rcnn_r50', 'retinanet_r50'],
                    f'Pairs to compare: {", ".join(PAIRS)}.')
  flags.DEFINE_integer('size', 640, 'Square input size in pixels.')
  flags.DEFINE_integer('rounds', 10, 'Timed calls per model.')
  flags.DEFINE_integer('warmup', 2, 'Untimed calls per model.')
  flags.DEFINE_string('work_dir', None, 'Where the exports go (default: a temp dir).')


def export(config_name, size, output_dir):
  """Exports a randomly initialised model; returns the SavedModel directory."""
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  from object_detection.protos import pipeline_pb2  # pylint: disable=g-import-not-at-top
  from gc_detection.od_api import config_edits  # pylint: disable=g-import-not-at-top
  import gc_detection.protos.global_context_pb2  # pylint: disable=g-import-not-at-top,unused-import

  pipeline = pipeline_pb2.TrainEvalPipelineConfig()
  with open(os.path.join(_REPO_ROOT, 'pipeline_configs', config_name)) as f:
    text_format.Merge(f.read(), pipeline)
  config_edits.set_square_input(pipeline.model, size)
  return export_pipeline(pipeline, output_dir, size)


def export_pipeline(pipeline, output_dir, size):
  """Exports a randomly initialised model of a TrainEvalPipelineConfig (run
  once on a size x size image); returns the SavedModel directory."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from object_detection import exporter_lib_v2  # pylint: disable=g-import-not-at-top
  from object_detection.builders import model_builder  # pylint: disable=g-import-not-at-top
  from gc_detection import od_api  # pylint: disable=g-import-not-at-top

  od_api.bind(pipeline)
  model = model_builder.build(pipeline.model, is_training=False)
  image = tf.zeros([1, size, size, 3])
  preprocessed, true_shapes = model.preprocess(image)
  model.postprocess(model.predict(preprocessed, true_shapes), true_shapes)
  checkpoint_dir = os.path.join(output_dir, 'checkpoint_in')
  tf.train.Checkpoint(model=model).save(os.path.join(checkpoint_dir, 'ckpt'))
  exporter_lib_v2.export_inference_graph('image_tensor', pipeline, checkpoint_dir,
                                         output_dir)
  return os.path.join(output_dir, 'saved_model')


def time_exported_pair(pair, size, rounds, warmup, work_dir):
  """Exports the pair's stock and GC models and times their serving_default.

  Returns:
    {'stock': [seconds per call], 'gc': [...]}, calls in interleaved rounds
    (harness.time_alternately), on one (1, size, size, 3) uint8 image.
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
  return harness.time_alternately(detect, rounds, warmup)


def main(argv):
  del argv
  values = flags.FLAGS
  work_dir = values.work_dir or tempfile.mkdtemp(prefix='gc_latency_')
  size = values.size
  rows = []
  for pair in values.pairs:
    times = time_exported_pair(pair, size, values.rounds, values.warmup, work_dir)
    medians = harness.medians(times)
    rows.append([pair, f'{medians["stock"] * 1e3:.0f}', f'{medians["gc"] * 1e3:.0f}',
                 str(harness.paired_ratio(times['gc'], times['stock']))])
    print(f'{pair}: measured', flush=True)
  print(markdown_table(['model', f'{size}x{size} stock ms', f'{size}x{size} GC ms',
                        'GC / stock per round: median [min, max]'], rows,
                       right_aligned=(1, 2)))
  print(f'\nMedians of {values.rounds} calls per model after {values.warmup} '
        f'warm-up calls, batch 1, float32, random weights; exports in {work_dir}.')


if __name__ == '__main__':
  _define_flags()
  app.run(main)
