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
from gc_detection.cli import coco_panoptic_flags
from gc_detection.cli import program
from gc_detection.data import coco_semantic


def main(argv):
  program.no_arguments(argv)
  written = coco_semantic.write_split(**coco_panoptic_flags.split_arguments())
  coco_panoptic_flags.report_shards(written)
  num_classes = written['num_classes']
  print(f'num_classes: {num_classes} (0: things, 1-{num_classes - 1}: stuff, '
        f'{coco_semantic.IGNORE_LABEL}: unlabelled), in {written["classes_file"]}')


if __name__ == '__main__':
  program.run(main)
