"""Writing files so that a crash never leaves a half-written one.

Everything gc_detection writes for a user (TFRecords, configs, label maps,
results, pictures, reports) goes to a temporary file in the destination's
directory and is renamed over the destination only when complete; os.replace
is atomic within one file system. On any error the temporary file is removed
and the destination is left as it was.
"""
import os
import shutil


def write_atomically(path, write):
  """Calls write(temporary_path), then renames the temporary file to path.

  Args:
    path: the destination; its directory is created if needed.
    write: a function that writes the whole file to the path it is given.
  """
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  # Named per process (not mkstemp, whose 0600 mode the file would keep).
  temporary = os.path.join(directory, f'.{os.path.basename(path)}.{os.getpid()}.tmp')
  try:
    write(temporary)
    os.replace(temporary, path)
  finally:
    if os.path.exists(temporary):
      os.remove(temporary)


def write_bytes(path, data):
  """Writes bytes to path atomically."""
  def write(temporary):
    with open(temporary, 'wb') as out:
      out.write(data)
  write_atomically(path, write)


def write_text(path, text):
  """Writes text to path atomically."""
  def write(temporary):
    with open(temporary, 'w') as out:
      out.write(text)
  write_atomically(path, write)


def write_directory_atomically(path, write):
  """Calls write(temporary_directory), then renames it to path.

  Args:
    path: the destination directory; it must not exist, or be empty.
    write: a function that fills the (new, empty) directory it is given.
  Raises:
    FileExistsError: path exists and is not an empty directory (nothing is
      written).
  """
  path = os.path.abspath(path)
  if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
    raise FileExistsError(f'{path} exists and is not an empty directory; choose a '
                          'new one or remove it')
  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  temporary = os.path.join(parent, f'.{os.path.basename(path)}.{os.getpid()}.tmp')
  shutil.rmtree(temporary, ignore_errors=True)
  os.makedirs(temporary)
  try:
    write(temporary)
    if os.path.isdir(path):
      os.rmdir(path)
    os.replace(temporary, path)
  finally:
    shutil.rmtree(temporary, ignore_errors=True)
