r"""Compiles protos/*.proto into gc_detection/protos/*_pb2.py.

scripts/setup.sh runs it when a .proto is newer than its module;
dev/proto_compiler.py explains how (protoc on the installed OD API's
descriptors, in a child process).

  python dev/compile_protos.py [--proto_dir=protos] [--output_root=.]
"""
import os

from absl import app
from absl import flags

import proto_compiler  # dev/, beside this program

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

flags.DEFINE_string('proto_dir', os.path.join(_REPO_ROOT, 'protos'),
                    'Directory of the .proto sources.')
flags.DEFINE_string('output_root', _REPO_ROOT,
                    'Directory that holds the gc_detection package to write into.')
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  for path in proto_compiler.compile_protos(FLAGS.proto_dir, FLAGS.output_root):
    print(f'compiled {os.path.relpath(path)}')


if __name__ == '__main__':
  app.run(main)
