"""One trainer per model_dir: a lock file held while the stock trainer runs.

Two trainers writing into one model_dir replace each other's checkpoints
without a word (each keeps its own CheckpointManager numbering and prunes
the other's files). gc_detection.od_api.trainer_hooks holds `ModelDirLock` around the
stock `model_lib_v2.train_loop` on the process that writes model_dir's
checkpoints (the chief), and gc_detection.od_api.training.training_phases holds it
while it rewrites the phase-switch checkpoint. A second trainer fails at once
with ModelDirInUseError, naming the holder.

The lock is `flock(2)` on `<model_dir>/trainer.lock`: the kernel releases it
when the holder exits, however it exits (a SIGKILL or a crash included), so
no stale lock blocks a restart. The file is never deleted; it holds the
current holder's pid, host, start time and command line while locked (empty
once released). On NFS, Linux emulates flock with POSIX locks, which the
server arbitrates across hosts.
"""
import datetime
import errno
import fcntl
import json
import os
import socket
import sys

from gc_detection import user_errors

LOCK_FILE = 'trainer.lock'


class ModelDirInUseError(RuntimeError, user_errors.UserError):
  """Another process holds model_dir's trainer lock."""


def _holder_text(path):
  try:
    with open(path) as lock_file:
      holder = json.loads(lock_file.read() or '{}')
  except (OSError, ValueError):
    holder = {}
  if not holder:
    return 'a process that is just starting'
  return (f'pid {holder.get("pid")} on {holder.get("host")}, started '
          f'{holder.get("started")}: {holder.get("command")}')


class ModelDirLock:
  """Exclusive, non-blocking lock on a model_dir (a context manager).

  Usage:
    with ModelDirLock(model_dir):
      ...  # write checkpoints
  """

  def __init__(self, model_dir, purpose='a trainer'):
    self.model_dir = model_dir
    self.path = os.path.join(model_dir, LOCK_FILE)
    self._purpose = purpose
    self._fd = None

  def acquire(self):
    """Takes the lock or raises ModelDirInUseError naming the holder."""
    os.makedirs(self.model_dir, exist_ok=True)
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
      os.close(fd)
      if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
        raise
      raise ModelDirInUseError(
          f'--model_dir={self.model_dir} is in use: {self.path} is held by '
          f'{_holder_text(self.path)}. Two trainers in one model_dir overwrite '
          'each other\'s checkpoints; wait for that one to finish, stop it, or '
          f'give {self._purpose} another --model_dir.') from None
    holder = {'pid': os.getpid(), 'host': socket.gethostname(),
              'started': datetime.datetime.now().astimezone().isoformat(
                  timespec='seconds'),
              'command': ' '.join(sys.argv) or sys.executable}
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(holder).encode())
    os.fsync(fd)
    self._fd = fd
    return self

  def release(self):
    """Empties the file and releases the lock (closing it releases it too)."""
    if self._fd is None:
      return
    fd, self._fd = self._fd, None
    try:
      os.ftruncate(fd, 0)
    finally:
      os.close(fd)

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc_info):
    self.release()
