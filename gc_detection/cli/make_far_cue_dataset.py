r"""Writes the far-cue dataset: identical objects told apart only by a far cue.

Into --output_dir: train.tfrecord and val.tfrecord (OD API tf.Examples),
label_map.pbtxt, val_coco.json (COCO ground truth of the val split),
val_images/ and dataset.json; gc_detection.data.far_cue_dataset and
far_cue_scenes describe them. Deterministic in --seed. scripts/demo.sh runs it:

  python -m gc_detection.cli.make_far_cue_dataset --output_dir=data/far_cue \
      [--num_train=400] [--num_val=100] [--size=256] [--cue_kinds=band,companion]
"""
from absl import flags

from gc_detection.cli import program
from gc_detection.data import far_cue_dataset
from gc_detection.data import far_cue_scenes

flags.DEFINE_string('output_dir', None, 'Where the dataset goes. Required.')
flags.DEFINE_integer('num_train', 400, 'Training images.', lower_bound=1)
flags.DEFINE_integer('num_val', 100, 'Validation images.', lower_bound=1)
flags.DEFINE_integer('seed', 0, 'Seed of the training split (val: seed + 1).')
flags.DEFINE_integer('size', 256, 'Images are size x size pixels.')
flags.DEFINE_list('cue_kinds', list(far_cue_scenes.CUE_KINDS),
                  f'Cue kinds to draw from: {", ".join(far_cue_scenes.CUE_KINDS)}.')
flags.DEFINE_integer('max_objects', 2, 'At most this many objects per image.',
                     lower_bound=1)
flags.DEFINE_integer('min_cue_distance', far_cue_scenes.SceneSpec.min_cue_distance,
                     'Px between the cue and every object box grown by one C4 '
                     'cell (default: half the ResNet C4 receptive field).')
FLAGS = flags.FLAGS


def main(argv):
  program.no_arguments(argv)
  program.require('output_dir')
  spec = far_cue_scenes.SceneSpec(size=FLAGS.size, cue_kinds=tuple(FLAGS.cue_kinds),
                                  max_objects=FLAGS.max_objects,
                                  min_cue_distance=FLAGS.min_cue_distance)
  try:
    spec.check()
  except ValueError as error:  # names the field, which is the flag of that name
    raise program.UsageError(f'--{error}') from error
  paths = far_cue_dataset.write_dataset(FLAGS.output_dir, FLAGS.num_train,
                                        FLAGS.num_val, FLAGS.seed, spec)
  print(f'far-cue dataset in {FLAGS.output_dir}: {FLAGS.num_train} train, '
        f'{FLAGS.num_val} val images ({paths["train"]}, {paths["val"]}, '
        f'{paths["label_map"]}, {paths["val_coco"]})')


if __name__ == '__main__':
  program.run(main)
