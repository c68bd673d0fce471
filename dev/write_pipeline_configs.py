r"""Writes the ready-made pipeline.config files in pipeline_configs/.

The configs are listed in dev/shipped_configs.py and rendered from the
templates in dev/faster_rcnn_configs.py and dev/retinanet_configs.py; a test
checks that the committed files equal this output. Run after changing them:

  python dev/write_pipeline_configs.py [--output_dir=pipeline_configs]

Paths use the OD API's PATH_TO_BE_CONFIGURED placeholder: replace it with your
data and checkpoint directories (see WORKSPACE.md). pipeline_configs/far_cue
is written by dev/write_far_cue_configs.py.
"""
import os

from absl import flags

from gc_detection.cli import program
import shipped_configs  # dev/, beside this program

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

flags.DEFINE_string('output_dir', os.path.join(_REPO_ROOT, 'pipeline_configs'),
                    'Where the configs are written.')
FLAGS = flags.FLAGS


def main(argv):
  program.no_arguments(argv)
  for path in shipped_configs.write_all(FLAGS.output_dir):
    print(f'wrote {os.path.relpath(path)}')


if __name__ == '__main__':
  program.run(main)
