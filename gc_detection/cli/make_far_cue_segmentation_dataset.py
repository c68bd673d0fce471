r"""Writes the far-cue segmentation dataset: identical disks told apart only by a far cue.

Into --output_dir: train.tfrecord and val.tfrecord (Model Garden
semantic-segmentation tf.Examples), val_images/ and dataset.json;
gc_detection.data.far_cue_strips describes the strips. Deterministic in --seed:

  python -m gc_detection.cli.make_far_cue_segmentation_dataset \
      --output_dir=data/far_cue_segmentation [--num_train=400] [--num_val=100]
"""
from absl import flags

from gc_detection.cli import program
from gc_detection.data import far_cue_segmentation_dataset
from gc_detection.data import far_cue_strips

_DEFAULTS = far_cue_strips.StripSpec()
flags.DEFINE_string('output_dir', None, 'Where the dataset goes. Required.')
flags.DEFINE_integer('num_train', 400, 'Training strips.', lower_bound=1)
flags.DEFINE_integer('num_val', 100, 'Validation strips.', lower_bound=1)
flags.DEFINE_integer('seed', 0, 'Seed of the training split (val: seed + 1).')
flags.DEFINE_integer('height', _DEFAULTS.height, 'Strip height in px.')
flags.DEFINE_integer('width', _DEFAULTS.width, 'Strip width in px.')
flags.DEFINE_integer('max_disks', _DEFAULTS.max_disks, 'At most this many disks per strip.')
flags.DEFINE_integer('min_cue_distance', _DEFAULTS.min_cue_distance,
                     'Px between the cue band and every disk pixel (default: half '
                     'the stock model\'s receptive field).')
FLAGS = flags.FLAGS


def main(argv):
  program.no_arguments(argv)
  program.require('output_dir')
  spec = far_cue_strips.StripSpec(height=FLAGS.height, width=FLAGS.width,
                                  max_disks=FLAGS.max_disks,
                                  min_cue_distance=FLAGS.min_cue_distance)
  try:
    spec.check()
  except ValueError as error:  # names the field, which is the flag of that name
    raise program.UsageError(f'--{error}') from error
  paths = far_cue_segmentation_dataset.write_dataset(
      FLAGS.output_dir, FLAGS.num_train, FLAGS.num_val, FLAGS.seed, spec)
  print(f'far-cue segmentation dataset in {FLAGS.output_dir}: {FLAGS.num_train} '
        f'train, {FLAGS.num_val} val strips ({paths["train"]}, {paths["val"]})')


if __name__ == '__main__':
  program.run(main)
