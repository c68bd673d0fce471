r"""Turns keras.applications ResNet weights into an ImageNet checkpoint of a backbone.

--target=od_api (default): the OD API classification checkpoint every shipped
config starts from (`fine_tune_checkpoint_type: "classification"`);
gc_detection.od_api.keras_resnet_conversion explains the conversion.
--target=model_garden: an official.vision ResNet backbone checkpoint for
`task.init_checkpoint` (Model Garden has no plain ResNet-101/152 of its own);
gc_detection.model_garden.keras_resnet_conversion explains it.

  python -m gc_detection.cli.convert_keras_resnet --depth=50 \
      --output_prefix=checkpoints/resnet50_imagenet/ckpt \
      [--weights=imagenet|none|/path/to/notop_weights.h5] [--overwrite]

writes checkpoints/resnet50_imagenet/ckpt-0.{index,data-00000-of-00001}.
"""
import os

from absl import flags

from gc_detection.cli import program
from gc_detection.od_api import keras_resnet_conversion

flags.DEFINE_integer('depth', 50, 'ResNet depth: 50, 101 or 152.')
flags.DEFINE_string(
    'weights', 'imagenet', "'imagenet' (keras downloads them), 'none' (random) "
    'or the path of a keras.applications ResNet .h5 without top.')
flags.DEFINE_string(
    'output_prefix', None, 'Checkpoint prefix; "-0" is appended, e.g. '
    'checkpoints/resnet50_imagenet/ckpt -> .../ckpt-0. Required.')
flags.DEFINE_bool('overwrite', False, 'Replace a checkpoint that already exists there.')
flags.DEFINE_enum(
    'input_channel_order', 'bgr', keras_resnet_conversion.CHANNEL_ORDERS,
    "Channel order the source weights expect: 'bgr' for keras' ImageNet "
    "ResNets (conv1 is flipped to read the OD API's RGB), 'rgb' to copy as is.")
flags.DEFINE_enum('target', 'od_api', ['od_api', 'model_garden'],
                  'Whose backbone the checkpoint is for.')
flags.DEFINE_float('norm_epsilon', 0.001, 'model_garden: the batch-norm epsilon of '
                   'the experiment (task.model.norm_activation.norm_epsilon).')
FLAGS = flags.FLAGS


def main(argv):
  program.no_arguments(argv)
  program.require('output_prefix')
  try:
    if FLAGS.target == 'model_garden':
      from gc_detection.model_garden import keras_resnet_conversion as model_garden  # pylint: disable=g-import-not-at-top
      path = model_garden.convert(FLAGS.depth, FLAGS.weights, FLAGS.output_prefix,
                                  FLAGS.overwrite, FLAGS.norm_epsilon)
    else:
      path = keras_resnet_conversion.convert(
          FLAGS.depth, FLAGS.weights, FLAGS.output_prefix, FLAGS.overwrite,
          FLAGS.input_channel_order)
  except (ValueError, FileNotFoundError, FileExistsError) as error:
    if not str(error).startswith('--'):
      raise  # two models that do not match: a bug, with its traceback
    # A flag value: --depth, --input_channel_order, --weights, --output_prefix.
    raise program.UsageError(str(error)) from error
  path = os.path.abspath(path)
  if FLAGS.target == 'model_garden':
    print(f'wrote {path}\n\nIn the experiment (YAML or --params_override):\n'
          f'  task.init_checkpoint: {path}\n  task.init_checkpoint_modules: backbone')
    return
  print(f'wrote {path}\n\nIn pipeline.config (train_config):\n'
        f'  fine_tune_checkpoint: "{path}"\n'
        '  fine_tune_checkpoint_type: "classification"\n'
        '  fine_tune_checkpoint_version: V2')


if __name__ == '__main__':
  program.run(main)
