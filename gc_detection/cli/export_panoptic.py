r"""Exports a Panoptic FPN checkpoint as a SavedModel that serves panoptic masks.

official.vision's `export_saved_model` takes a Panoptic FPN experiment for a
Mask R-CNN and exports the detector alone; this command runs the same
exporter (`export_saved_model_lib.export_inference_graph`, same flags) with
gc_detection's Panoptic FPN serving module. The SavedModel (in
--export_dir/saved_model, the checkpoint in --export_dir/checkpoint, as
official.vision's own command lays them out) serves boxes, masks and
the panoptic category and instance masks, and needs only TensorFlow to load.
--export_dir is written whole or not at all.

  python -m gc_detection.cli.export_panoptic \
      --experiment=panoptic_fpn_resnet50_gc_far_cue --config_file=params.yaml \
      --checkpoint_path=model_dir/ckpt-600 --export_dir=exported \
      --input_image_size=64,512 [--batch_size=1]
"""
import os

from absl import flags
import tensorflow as tf

from official.core import exp_factory
from official.modeling import hyperparams
from official.vision.serving import export_saved_model_lib

from gc_detection import atomic_files
from gc_detection.cli import program
from gc_detection.model_garden import panoptic_config
from gc_detection.model_garden import panoptic_export
from gc_detection.model_garden import registry  # pylint: disable=unused-import

flags.DEFINE_string('experiment', None, 'A registered Panoptic FPN experiment. Required.')
flags.DEFINE_multi_string('config_file', [], 'YAML files overriding the experiment.')
flags.DEFINE_string('params_override', '', 'YAML/JSON string overriding the experiment.')
flags.DEFINE_string('checkpoint_path', None,
                    'A checkpoint file prefix or a model_dir (its latest). Required.')
flags.DEFINE_string('export_dir', None, 'A new directory for the export. Required.')
flags.DEFINE_integer('batch_size', None, 'Fixed batch size (default: any).')
flags.DEFINE_string('input_image_size', None, 'height,width of the model canvas. Required.')
FLAGS = flags.FLAGS


def _params():
  params = exp_factory.get_exp_config(FLAGS.experiment)
  for config_file in FLAGS.config_file:
    params = hyperparams.override_params_dict(params, config_file, is_strict=True)
  if FLAGS.params_override:
    params = hyperparams.override_params_dict(params, FLAGS.params_override,
                                              is_strict=True)
  if not isinstance(params.task, panoptic_config.PanopticFPNTask):
    raise program.UsageError(f'--experiment: {FLAGS.experiment} is not a Panoptic FPN '
                             'experiment (use official.vision.serving.export_saved_model)')
  params.validate()
  params.lock()
  return params


def _checkpoint():
  path = FLAGS.checkpoint_path
  if tf.io.gfile.isdir(path):
    path = tf.train.latest_checkpoint(path)
  if not path or not tf.io.gfile.exists(path + '.index'):
    raise program.UsageError(f'--checkpoint_path: {FLAGS.checkpoint_path} holds no '
                             'checkpoint')
  return path


def _image_size():
  try:
    size = [int(value) for value in FLAGS.input_image_size.split(',')]
  except ValueError:
    size = []
  if len(size) != 2 or min(size) < 1:
    raise program.UsageError(f'--input_image_size: expected height,width, got '
                             f'{FLAGS.input_image_size!r}')
  return size


def main(argv):
  program.no_arguments(argv)
  program.require('experiment', 'checkpoint_path', 'export_dir', 'input_image_size')
  params, checkpoint, size = _params(), _checkpoint(), _image_size()
  module = panoptic_export.PanopticModule(params=params, batch_size=FLAGS.batch_size,
                                          input_image_size=size)

  def export(directory):
    export_saved_model_lib.export_inference_graph(
        input_type='image_tensor', batch_size=FLAGS.batch_size, input_image_size=size,
        params=params, checkpoint_path=checkpoint, export_dir=directory,
        export_module=module, export_checkpoint_subdir='checkpoint',
        export_saved_model_subdir='saved_model')

  try:
    atomic_files.write_directory_atomically(FLAGS.export_dir, export)
  except FileExistsError as error:
    raise program.UsageError(f'--export_dir: {error}') from error
  print(f'Panoptic FPN SavedModel in {os.path.join(FLAGS.export_dir, "saved_model")}')


if __name__ == '__main__':
  program.run(main)
