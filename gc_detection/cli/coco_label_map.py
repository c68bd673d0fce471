r"""Writes the OD API label map of a COCO-format dataset from its instances JSONs.

The label map holds exactly the JSONs' category ids and names (the OD API's
create_coco_tf_record.py stores each box's class only as its name); the files
are checked first (gc_detection.od_api.coco_label_map says what and why).
scripts/prepare_coco.sh runs this.

  python -m gc_detection.cli.coco_label_map \
      --annotations_file=annotations/instances_train2017.json \
      --annotations_file=annotations/instances_val2017.json \
      --output_path=data/coco/label_map.pbtxt
"""
from absl import flags

from gc_detection.cli import program
from gc_detection.od_api import coco_label_map

flags.DEFINE_multi_string(
    'annotations_file', None, 'COCO instances JSON; repeat for every split. All '
    'must have the same categories. Required.')
flags.DEFINE_string('output_path', None, 'Where the label map (pbtxt) goes. Required.')
FLAGS = flags.FLAGS


def main(argv):
  program.no_arguments(argv)
  program.require('annotations_file', 'output_path')
  names = coco_label_map.write_label_map(FLAGS.annotations_file, FLAGS.output_path)
  print(f'label map: {len(names)} classes, ids {min(names)}..{max(names)}; '
        f'set num_classes: {max(names)} in the pipeline.config')


if __name__ == '__main__':
  program.run(main)
