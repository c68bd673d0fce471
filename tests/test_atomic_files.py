"""Atomic writes: a failure leaves neither a half-written file nor a directory."""
import os

import pytest

from gc_detection import atomic_files


def test_an_export_directory_is_written_whole_or_not_at_all(tmp_path):
  def fail_halfway(directory):
    (tmp_path / 'seen').write_text(directory)
    with open(os.path.join(directory, 'saved_model.pb'), 'w') as out:
      out.write('half')
    raise RuntimeError('the exporter failed')

  target = tmp_path / 'export'
  with pytest.raises(RuntimeError):
    atomic_files.write_directory_atomically(str(target), fail_halfway)
  assert not target.exists() and sorted(os.listdir(tmp_path)) == ['seen']
  atomic_files.write_directory_atomically(
      str(target), lambda directory: open(os.path.join(directory, 'a'), 'w').close())
  assert os.listdir(target) == ['a']
  with pytest.raises(FileExistsError, match='export exists'):
    atomic_files.write_directory_atomically(str(target), fail_halfway)
