r"""Runs a trained model on held-out images at every checkpoint and scores it with COCO AP.

Builds the model of --pipeline_config_path once, restores each checkpoint the
stock trainer wrote into --model_dir (or only the newest), detects on the
images of a COCO-format ground truth and scores them with pycocotools:
AP, AP50, AP75, AP per class, class-agnostic AP and class accuracy, one JSON
entry per checkpoint. The stock evaluator follows only the newest checkpoint;
`tabulate_evaluator_metrics` reads what the stock evaluator wrote, this
command computes its own. gc_detection.od_api.checkpoint_evaluation has the
details.

  python -m gc_detection.cli.evaluate_every_checkpoint \
      --pipeline_config_path=pipeline_configs/far_cue/faster_rcnn_resnet50_gc_far_cue.config \
      --model_dir=models/far_cue_gc --coco_annotations_file=data/far_cue/val_coco.json \
      --image_dir=data/far_cue/val_images --output=models/far_cue_gc/coco_metrics.json
"""
import json
import sys

from absl import flags

from gc_detection import atomic_files
from gc_detection.cli import program
from gc_detection.od_api import checkpoint_evaluation

flags.DEFINE_string('pipeline_config_path', None, 'The run\'s pipeline.config. Required.')
flags.DEFINE_string('model_dir', None, 'The run\'s model_dir (checkpoints). Required.')
flags.DEFINE_string('coco_annotations_file', None, 'COCO ground truth JSON. Required.')
flags.DEFINE_string('image_dir', None, 'Directory of the JSON\'s file_names. Required.')
flags.DEFINE_string('output', None, 'JSON file for the metrics (default: print them).')
flags.DEFINE_bool('latest_only', False, 'Only the newest checkpoint.')
FLAGS = flags.FLAGS


def main(argv):
  program.no_arguments(argv)
  program.require('pipeline_config_path', 'model_dir', 'coco_annotations_file',
                  'image_dir')
  results = checkpoint_evaluation.evaluate_run(
      FLAGS.pipeline_config_path, FLAGS.model_dir, FLAGS.coco_annotations_file,
      FLAGS.image_dir, FLAGS.latest_only,
      log=lambda line: print(line, file=sys.stderr, flush=True))
  text = json.dumps(results, indent=2) + '\n'
  if FLAGS.output:
    atomic_files.write_text(FLAGS.output, text)
  else:
    print(text, end='')


if __name__ == '__main__':
  program.run(main)
