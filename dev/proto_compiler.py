"""Compiles protos/*.proto into gc_detection/protos/*_pb2.py (dev/compile_protos.py runs it).

The OD API's PyPI sdist ships generated *_pb2.py modules but no .proto sources,
so protoc cannot resolve `import "object_detection/protos/pipeline.proto"` from
files. Instead the installed modules' descriptors are serialised into a
FileDescriptorSet and handed to protoc with --descriptor_set_in.

protoc (grpcio-tools' bundled compiler) runs in a child process: its C
extension segfaults when it is loaded into a process that has imported
TensorFlow 2.20 (both carry their own protobuf/abseil symbols), and callers
such as the tests have.

Each protos/NAME.proto is compiled under the file name
`gc_detection/protos/NAME.proto`, so the generated module is
`gc_detection.protos.NAME_pb2` and its descriptor name cannot clash with other
packages' protos in the global descriptor pool.

The modules are written through a temporary file and a rename, as
gc_detection.atomic_files does; that module is not imported here: importing
gc_detection makes the extension parseable, which needs the very module being
built.
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2

# Where the compiled protos live, as a path relative to the output root.
PROTO_PACKAGE_PATH = os.path.join('gc_detection', 'protos')


def od_api_descriptor_set():
  """Returns a FileDescriptorSet of the installed OD API pipeline protos.

  Starts from object_detection/protos/pipeline.proto and follows its imports,
  listing every file after the files it imports (the order protoc expects).
  """
  from object_detection.protos import pipeline_pb2  # pylint: disable=g-import-not-at-top

  ordered, seen = [], set()

  def visit(file_descriptor):
    if file_descriptor.name in seen:
      return
    seen.add(file_descriptor.name)
    for dependency in file_descriptor.dependencies:
      visit(dependency)
    ordered.append(file_descriptor)

  visit(pipeline_pb2.DESCRIPTOR)
  descriptor_set = descriptor_pb2.FileDescriptorSet()
  for file_descriptor in ordered:
    file_descriptor.CopyToProto(descriptor_set.file.add())
  return descriptor_set


def compile_protos(proto_dir, output_root):
  """Compiles every proto_dir/*.proto; returns the paths of the *_pb2.py files.

  Outputs are written to a temporary directory first and moved into
  output_root/gc_detection/protos only when protoc succeeds, so a failed run
  leaves the previous modules intact.

  Raises:
    FileNotFoundError: proto_dir holds no .proto file.
    RuntimeError: protoc reports an error (its message is included).
  """
  sources = sorted(glob.glob(os.path.join(proto_dir, '*.proto')))
  if not sources:
    raise FileNotFoundError(f'no .proto files in {os.path.abspath(proto_dir)}')

  with tempfile.TemporaryDirectory(prefix='gc_protos_') as work_dir:
    descriptor_set_path = os.path.join(work_dir, 'object_detection.pb')
    with open(descriptor_set_path, 'wb') as out:
      out.write(od_api_descriptor_set().SerializeToString())

    staged_sources = os.path.join(work_dir, 'src')
    os.makedirs(os.path.join(staged_sources, PROTO_PACKAGE_PATH))
    proto_names = []
    for source in sources:
      name = os.path.join(PROTO_PACKAGE_PATH, os.path.basename(source))
      shutil.copyfile(source, os.path.join(staged_sources, name))
      proto_names.append(name)

    staged_outputs = os.path.join(work_dir, 'out')
    os.makedirs(staged_outputs)
    exit_code = subprocess.run([
        sys.executable, '-m', 'grpc_tools.protoc',
        f'--proto_path={staged_sources}',
        f'--descriptor_set_in={descriptor_set_path}',
        f'--python_out={staged_outputs}',
    ] + proto_names, check=False).returncode
    if exit_code != 0:
      raise RuntimeError(
          f'protoc failed (exit code {exit_code}) on {", ".join(sources)}; '
          'its error is printed above')

    written = []
    target_dir = os.path.join(output_root, PROTO_PACKAGE_PATH)
    os.makedirs(target_dir, exist_ok=True)
    for name in proto_names:
      module = name[:-len('.proto')] + '_pb2.py'
      target = os.path.join(output_root, module)
      shutil.copyfile(os.path.join(staged_outputs, module), target + '.tmp')
      os.replace(target + '.tmp', target)
      written.append(target)
  return written
