r"""Writes COCO panoptic annotations as Panoptic FPN TFRecords (Table 5).

Instances with boxes and masks for the Mask R-CNN, and the panoptic category
and instance masks (0 void, 1-80 things, 81-133 stuff), as the registered
`panoptic_fpn_resnet50*_coco` experiments read them from
data/coco_panoptic/{train,val}-*.tfrecord; gc_detection.data.coco_panoptic
describes the records. Run once per split:

  python -m gc_detection.cli.prepare_coco_panoptic --split=val \
      --panoptic_annotations_file=annotations/panoptic_val2017.json \
      --panoptic_masks_dir=annotations/panoptic_val2017 \
      --image_dir=val2017 --output_dir=data/coco_panoptic \
      [--num_shards=8] [--max_images=100]
"""
from gc_detection.cli import coco_panoptic_flags
from gc_detection.cli import program
from gc_detection.data import coco_panoptic


def main(argv):
  program.no_arguments(argv)
  written = coco_panoptic.write_split(**coco_panoptic_flags.split_arguments())
  coco_panoptic_flags.report_shards(written)
  things, stuff = written['num_thing_classes'], written['num_stuff_classes']
  print(f'categories: 0 void, 1-{things} things, {things + 1}-{things + stuff} stuff, '
        f'in {written["categories_file"]}')


if __name__ == '__main__':
  program.run(main)
