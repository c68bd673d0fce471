r"""Writes COCO panoptic annotations as semantic-segmentation TFRecords (Table 4).

The label maps of the semantic branch of Panoptic FPN (0: any thing, 1..53:
the stuff categories in category-id order, 255: unlabelled), as the
registered `seg_resnet*_fpn*_coco` experiments read them from
data/coco_semantic/{train,val}-*.tfrecord; gc_detection.data.coco_semantic
describes the records. Run once per split:

  python -m gc_detection.cli.prepare_coco_semantic --split=val \
      --panoptic_annotations_file=annotations/panoptic_val2017.json \
      --panoptic_masks_dir=annotations/panoptic_val2017 \
      --image_dir=val2017 --output_dir=data/coco_semantic \
      [--num_shards=8] [--max_images=100]
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
flags.DEFINE_string('output_dir', None,
                    'Where the shards and classes.json go, e.g. data/coco_semantic. '
                    'Required.')
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


def main(argv):
  program.no_arguments(argv)
  program.require('panoptic_annotations_file', 'panoptic_masks_dir', 'image_dir',
                  'output_dir', 'split')
  _require_existing('panoptic_annotations_file', os.path.isfile, 'file')
  _require_existing('panoptic_masks_dir', os.path.isdir, 'directory')
  _require_existing('image_dir', os.path.isdir, 'directory')
  written = coco_semantic.write_split(
      FLAGS.panoptic_annotations_file, FLAGS.panoptic_masks_dir, FLAGS.image_dir,
      FLAGS.output_dir, FLAGS.split,
      FLAGS.num_shards or coco_semantic.DEFAULT_NUM_SHARDS[FLAGS.split],
      max_images=FLAGS.max_images)
  num_classes = written['num_classes']
  print(f'{FLAGS.split}: {written["num_images"]} images in {len(written["shards"])} '
        f'shards, {os.path.join(FLAGS.output_dir, FLAGS.split)}-*.tfrecord'
        + (f' (removed {len(written["removed"])} shards of an earlier run)'
           if written['removed'] else ''))
  print(f'num_classes: {num_classes} (0: things, 1-{num_classes - 1}: stuff, '
        f'{coco_semantic.IGNORE_LABEL}: unlabelled), in {written["classes_file"]}')


if __name__ == '__main__':
  program.run(main)
