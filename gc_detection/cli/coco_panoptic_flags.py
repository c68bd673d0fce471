"""The flags of the commands that convert COCO panoptic annotations.

Shared by prepare_coco_semantic (Table 4) and prepare_coco_panoptic (Table 5),
which read the same files and write shards the same way.
"""
import os

from absl import flags

from gc_detection.cli import program
from gc_detection.data import coco_semantic

flags.DEFINE_string('panoptic_annotations_file', None,
                    'panoptic_{split}2017.json. Required.')
flags.DEFINE_string('panoptic_masks_dir', None,
                    'The directory of its panoptic PNGs, e.g. panoptic_val2017. Required.')
flags.DEFINE_string('image_dir', None, 'The directory of the JPEGs, e.g. val2017. Required.')
flags.DEFINE_string('output_dir', None, 'Where the shards go. Required.')
flags.DEFINE_enum('split', None, sorted(coco_semantic.DEFAULT_NUM_SHARDS),
                  'Names the shards <split>-00000-of-000NN.tfrecord. Required.')
flags.DEFINE_integer('num_shards', None, 'Number of shards; default: '
                     + ', '.join(f'{count} for {split}' for split, count
                                 in coco_semantic.DEFAULT_NUM_SHARDS.items())
                     + ' (fewer if there are fewer images).', lower_bound=1)
flags.DEFINE_integer('max_images', None, 'Convert only the first this many images '
                     '(to try it out).', lower_bound=1)
FLAGS = flags.FLAGS


def _require_existing(flag_name, is_kind, kind):
  """Raises UsageError naming the flag unless its path is an existing `kind`."""
  path = FLAGS[flag_name].value
  if not is_kind(path):
    raise program.UsageError(f'--{flag_name}: no such {kind}: {path}')


def split_arguments():
  """The flags as write_split's arguments, checked; raises UsageError naming a flag."""
  program.require('panoptic_annotations_file', 'panoptic_masks_dir', 'image_dir',
                  'output_dir', 'split')
  _require_existing('panoptic_annotations_file', os.path.isfile, 'file')
  _require_existing('panoptic_masks_dir', os.path.isdir, 'directory')
  _require_existing('image_dir', os.path.isdir, 'directory')
  return dict(annotations_file=FLAGS.panoptic_annotations_file,
              masks_dir=FLAGS.panoptic_masks_dir, image_dir=FLAGS.image_dir,
              output_dir=FLAGS.output_dir, split=FLAGS.split,
              num_shards=FLAGS.num_shards or coco_semantic.DEFAULT_NUM_SHARDS[FLAGS.split],
              max_images=FLAGS.max_images)


def report_shards(written):
  """Prints where the split's shards went."""
  print(f'{FLAGS.split}: {written["num_images"]} images in {len(written["shards"])} '
        f'shards, {os.path.join(FLAGS.output_dir, FLAGS.split)}-*.tfrecord'
        + (f' (removed {len(written["removed"])} shards of an earlier run)'
           if written['removed'] else ''))
