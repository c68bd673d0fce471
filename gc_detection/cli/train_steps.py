r"""Runs N stock training steps of a detector on generated data: a smoke test.

Builds the model of a pipeline.config (default: a built-in Faster R-CNN
ResNet-50 + global context at 256 x 256 px), feeds it generated coloured
rectangles through the OD API's own input pipeline and runs the stock
`model_lib_v2.eager_train_step`; prints every loss term per step. Exits 1 if a
loss is not finite. gc_detection.od_api.training.train_steps has the details.

  python -m gc_detection.cli.train_steps [--num_steps=1] \
      [--pipeline_config_path=pipeline_configs/faster_rcnn_resnet50_v1_gc_600x1024_coco.config] \
      [--work_dir=/tmp/gc_smoke]
"""
import math
import os
import sys
import tempfile
import warnings

from absl import flags

from gc_detection.cli import program
from gc_detection.od_api.training import train_steps

flags.DEFINE_string(
    'pipeline_config_path', None, 'pipeline.config of the model (default: '
    f'the {train_steps.DEFAULT_PIPELINE_NAME}). Its input paths, num_classes '
    'and batch size are replaced by the generated data\'s.')
flags.DEFINE_integer('num_steps', 1, 'Training steps to run.', lower_bound=1)
flags.DEFINE_integer('num_images', 4, 'Generated images.', lower_bound=1)
flags.DEFINE_integer('seed', 0, 'Seed of the data and the weights.')
flags.DEFINE_bool('verbose', False, 'Show TensorFlow and OD API warnings (deprecations).')
flags.DEFINE_string(
    'work_dir', None, 'Where the generated TFRecord and label map go '
    '(default: a temporary directory, removed at the end).')
FLAGS = flags.FLAGS


def main(argv):
  program.no_arguments(argv)
  import gc_detection  # pylint: disable=g-import-not-at-top
  from gc_detection.data import shapes  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  gc_detection.register()
  if not FLAGS.verbose:
    # The OD API logs deprecation notices on every build and calls a
    # deprecated Keras function in every training step.
    tf.get_logger().setLevel('ERROR')
    warnings.filterwarnings('ignore', message='.*set_learning_phase.*')

  with tempfile.TemporaryDirectory(prefix='gc_smoke_') as scratch:
    work_dir = FLAGS.work_dir or scratch
    os.makedirs(work_dir, exist_ok=True)
    record_path, label_map_path = train_steps.write_shapes_dataset(
        work_dir, FLAGS.seed, FLAGS.num_images)
    configs = train_steps.load_configs(FLAGS.pipeline_config_path, record_path,
                                       label_map_path, len(shapes.SHAPE_COLOURS))
    meta_architecture = configs['model'].WhichOneof('model')
    extractor = getattr(configs['model'], meta_architecture).feature_extractor.type
    source = FLAGS.pipeline_config_path or train_steps.DEFAULT_PIPELINE_NAME
    print(f'model: {meta_architecture} ({extractor}) from {source}; randomly '
          'initialised weights (no fine_tune_checkpoint is restored), batch 1',
          flush=True)
    history = train_steps.train_steps(configs, FLAGS.num_steps, FLAGS.seed)

  final = history[-1]['Loss/total_loss']
  if not all(math.isfinite(v) for step in history for v in step.values()):
    print(f'FAILED: a loss is not finite: {history[-1]}', file=sys.stderr)
    return program.EXIT_USER_ERROR
  print(f'OK: {len(history)} training step(s), total loss {final:.4f}')
  return program.EXIT_OK


if __name__ == '__main__':
  program.run(main)
