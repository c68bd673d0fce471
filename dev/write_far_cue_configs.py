r"""Writes pipeline_configs/far_cue/*.config: the far-cue pair, stock and + GC.

dev/far_cue_configs.py derives both from the shipped Faster R-CNN R-50
configs by the same edits; a test checks that the committed files equal this
output. Run after changing it or those configs:

  python dev/write_far_cue_configs.py [--output_dir=pipeline_configs/far_cue]
"""
import os

from absl import flags

from gc_detection.cli import program
import far_cue_configs  # dev/, beside this program

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

flags.DEFINE_string('output_dir', os.path.join(_REPO_ROOT, 'pipeline_configs', 'far_cue'),
                    'Where the configs are written.')
FLAGS = flags.FLAGS


def main(argv):
  program.no_arguments(argv)
  for path in far_cue_configs.write_all(FLAGS.output_dir).values():
    print(f'wrote {os.path.relpath(path)}')


if __name__ == '__main__':
  program.run(main)
