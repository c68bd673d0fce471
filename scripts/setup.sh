#!/usr/bin/env bash
# Installs gc_detection and its pinned stack into .venv in the checkout.
#
# Idempotent: a second run on an installed tree checks the install and exits in
# seconds. It reinstalls only when requirements/tf215.txt or setup.py changed.
#   GC_PYTHON   interpreter for the venv (default: python3.11)
#   GC_VENV     venv location (default: <checkout>/.venv)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO_ROOT"

PYTHON="${GC_PYTHON:-python3.11}"
STACK_FILE="requirements/tf215.txt"
STAMP="$VENV/.gc_detection_installed"

# pip, quiet, minus one warning this machine's pip config causes for every
# package (an extra index in a local folder that does not exist).
pip_install() {
  "$VENV_PYTHON" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 |
    { grep -v "is ignored: it is neither a file nor a directory" || true; }
  return "${PIPESTATUS[0]}"
}

started=$SECONDS
if [ ! -x "$VENV_PYTHON" ]; then
  if ! command -v "$PYTHON" >/dev/null; then
    echo "setup.sh: $PYTHON not found; install Python 3.11 or set GC_PYTHON" >&2
    exit 1
  fi
  log "creating $VENV with $("$PYTHON" --version)"
  "$PYTHON" -m venv "$VENV"
fi
"$VENV_PYTHON" - <<'PY'
import sys
if not ((3, 9) <= sys.version_info[:2] <= (3, 11)):
  sys.exit(f'setup.sh: the venv has Python {sys.version.split()[0]}; the TF 2.15 '
           'stack needs 3.9-3.11 (3.11 is tested). Remove .venv and set GC_PYTHON.')
PY

wanted="$(cat "$STACK_FILE" setup.py | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$wanted" ]; then
  rm -f "$STAMP"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  requirements_section all-but-no-deps "$STACK_FILE" > "$tmp/stack.txt"
  requirements_section no-deps "$STACK_FILE" > "$tmp/od_api.txt"
  log "installing the pinned stack ($(wc -l < "$tmp/stack.txt") packages; a few minutes on a fresh machine)"
  pip_install -r "$tmp/stack.txt"
  log "installing the TF2 Object Detection API (PyPI sdist, --no-deps, hash-checked)"
  pip_install --no-deps --require-hashes -r "$tmp/od_api.txt"
  log "installing gc_detection (editable)"
  pip_install --no-deps --no-build-isolation -e .
  echo "$wanted" > "$STAMP"
fi

# The start-up hook that registers gc_detection with the OD API in every
# process of the venv (cheap; rewritten on every run so it never goes stale).
"$VENV_PYTHON" -m gc_detection.tools.install_startup_hook >/dev/null

# Recompile the protos when a .proto is newer than its module (or it is missing).
stale=0
for proto in protos/*.proto; do
  module="gc_detection/protos/$(basename "$proto" .proto)_pb2.py"
  [ "$module" -nt "$proto" ] || stale=1
done
if [ "$stale" = 1 ]; then
  log "compiling protos/*.proto"
  run_without_tf_noise "$VENV_PYTHON" -m gc_detection.tools.compile_protos
fi

run_without_tf_noise "$VENV_PYTHON" - <<'PY'
import object_detection.builders.model_builder  # the OD API and its TF stack
import gc_detection
from gc_detection.protos import global_context_pb2  # the compiled extension
import tensorflow as tf
# Registered automatically by the start-up hook when model_builder was imported.
assert 'faster_rcnn_resnet50_gc' in (
    object_detection.builders.model_builder.FASTER_RCNN_KERAS_FEATURE_EXTRACTOR_CLASS_MAP)
print(f'[setup] ready: tensorflow {tf.__version__}, gc_detection '
      f'{gc_detection.__version__}, OD API at '
      f'{object_detection.builders.model_builder.__file__.rsplit("/builders", 1)[0]}')
PY
log "done in $((SECONDS - started)) s (venv: $VENV)"
