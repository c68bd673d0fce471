r"""Writes the far-cue panoptic dataset: things and stuff told apart only by a far cue.

Into --output_dir: train.tfrecord and val.tfrecord (Model Garden panoptic
tf.Examples: instances with masks, panoptic category and instance masks),
val_images/ and dataset.json; gc_detection.data.far_cue_panoptic describes the
strips. Deterministic in --seed:

  python -m gc_detection.cli.make_far_cue_panoptic_dataset \
      --output_dir=data/far_cue_panoptic [--num_train=400] [--num_val=100]
"""
import dataclasses

from absl import flags

from gc_detection.cli import program
from gc_detection.data import far_cue_panoptic
from gc_detection.data import far_cue_panoptic_dataset

_DEFAULTS = far_cue_panoptic.PANOPTIC_SPEC
flags.DEFINE_string('output_dir', None, 'Where the dataset goes. Required.')
flags.DEFINE_integer('num_train', 400, 'Training strips.', lower_bound=1)
flags.DEFINE_integer('num_val', 100, 'Validation strips.', lower_bound=1)
flags.DEFINE_integer('seed', 0, 'Seed of the training split (val: seed + 1).')
flags.DEFINE_integer('max_disks', _DEFAULTS.max_disks, 'At most this many disks per strip.')
FLAGS = flags.FLAGS


def main(argv):
  program.no_arguments(argv)
  program.require('output_dir')
  spec = dataclasses.replace(_DEFAULTS, max_disks=FLAGS.max_disks)
  try:
    spec.check()
  except ValueError as error:  # names the field, which is the flag of that name
    raise program.UsageError(f'--{error}') from error
  paths = far_cue_panoptic_dataset.write_dataset(
      FLAGS.output_dir, FLAGS.num_train, FLAGS.num_val, FLAGS.seed, spec)
  print(f'far-cue panoptic dataset in {FLAGS.output_dir}: {FLAGS.num_train} '
        f'train, {FLAGS.num_val} val strips ({paths["train"]}, {paths["val"]})')


if __name__ == '__main__':
  program.run(main)
