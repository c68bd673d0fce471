#!/usr/bin/env bash
# Installs gc_detection and a pinned stack into a venv in the checkout.
#
#   bash scripts/setup.sh                  # the default stack: TF 2.15, .venv, python3.11
#   bash scripts/setup.sh --stack=tf220    # TF 2.20 + tf-keras, .venv-tf220, python3.12
#
# Idempotent: a second run on an installed tree checks the install and exits in
# seconds. It reinstalls only when the stack file or setup.py changed.
#   --stack / GC_STACK  tf215 (TF 2.15, Python 3.9-3.11) or tf220 (TF 2.20,
#               Python 3.11-3.12); picks requirements/<stack>.txt and the venv.
#               Default: the stack the venv was made with, else tf215. The
#               other scripts (test.sh, train.sh, ...) follow GC_STACK too.
#   GC_PYTHON   interpreter for the venv (default: python3.11 for tf215,
#               python3.12 for tf220)
#   GC_VENV     venv location (default: <checkout>/.venv for tf215,
#               <checkout>/.venv-tf220 for tf220)
set -euo pipefail
for argument in "$@"; do
  case "$argument" in
    --stack=*) export GC_STACK="${argument#--stack=}" ;;
    *) echo "setup.sh: unknown argument $argument (expected --stack=tf215|tf220)" >&2; exit 2 ;;
  esac
done
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO_ROOT"

# A venv keeps the stack it was made with: scripts that call setup.sh (train.sh,
# the tests' subprocesses) must not reinstall another stack over it.
STACK_RECORD="$VENV/.gc_detection_stack"
recorded="$(cat "$STACK_RECORD" 2>/dev/null || true)"
if [ -z "$recorded" ] && [ -x "$VENV_PYTHON" ]; then  # a venv from before the record
  recorded="$("$VENV_PYTHON" -c 'import importlib.metadata as m
try:
  print({"2.15": "tf215", "2.20": "tf220"}.get(m.version("tensorflow")[:4], ""))
except m.PackageNotFoundError:
  pass' 2>/dev/null || true)"
fi
STACK="${GC_STACK:-${recorded:-tf215}}"
if [ -n "$recorded" ] && [ "$recorded" != "$STACK" ]; then
  echo "setup.sh: $VENV has the $recorded stack, GC_STACK=$STACK asks for another;" \
       "remove that venv or set GC_VENV to a new one" >&2
  exit 2
fi
case "$STACK" in
  tf215) PYTHON_RANGE="3.9 3.11" ;;
  tf220) PYTHON_RANGE="3.11 3.12" ;;
  *) echo "setup.sh: GC_STACK=$STACK: unknown stack (tf215 or tf220)" >&2; exit 2 ;;
esac
export GC_STACK="$STACK"  # setup.py reads it too
case "$STACK" in tf220) default_python=python3.12 ;; *) default_python=python3.11 ;; esac
# The interpreter: GC_PYTHON, else python3.X on PATH if it runs (a pyenv shim
# of a version that is not selected does not), else pyenv's own copy.
find_python() {
  local name="$1" candidate
  if "$name" -c 'pass' >/dev/null 2>&1; then echo "$name"; return; fi
  for candidate in $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"${name#python}".*/bin/"$name" \
                       2>/dev/null | sort -V -r); do
    if "$candidate" -c 'pass' >/dev/null 2>&1; then echo "$candidate"; return; fi
  done
  echo "$name"
}
PYTHON="${GC_PYTHON:-$(find_python "$default_python")}"
STACK_FILE="requirements/$STACK.txt"
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
  if ! "$PYTHON" -c 'pass' >/dev/null 2>&1; then
    echo "setup.sh: $PYTHON not found; install it or set GC_PYTHON (the $STACK stack needs Python ${PYTHON_RANGE/ /-})" >&2
    exit 1
  fi
  log "creating $VENV with $("$PYTHON" --version)"
  "$PYTHON" -m venv "$VENV"
fi
"$VENV_PYTHON" - "$STACK" $PYTHON_RANGE <<'PY'
import sys
stack, low, high = sys.argv[1], *(tuple(map(int, v.split('.'))) for v in sys.argv[2:])
if not low <= sys.version_info[:2] <= high:
  sys.exit(f'setup.sh: the venv has Python {sys.version.split()[0]}; the {stack} '
           f'stack needs {".".join(map(str, low))}-{".".join(map(str, high))}. '
           'Remove the venv and set GC_PYTHON (or GC_STACK).')
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
  reinstalled=1
fi
echo "$STACK" > "$STACK_RECORD"

# The start-up hook that registers gc_detection with the OD API in every
# process of the venv (cheap; rewritten on every run so it never goes stale).
"$VENV_PYTHON" -m gc_detection.cli.install_startup_hook >/dev/null

# Recompile the protos when a .proto is newer than its module (or it is missing).
# Also after a (re)install: the generated code must suit the installed protobuf.
stale="${reinstalled:-0}"
# And when it was generated for another protobuf major version (a checkout
# shared by a tf215 and a tf220 venv: protoc 35's modules need protobuf >= 7).
protobuf_major="$("$VENV_PYTHON" -c 'import google.protobuf as p; print(p.__version__.split(".")[0])')"
for proto in protos/*.proto; do
  module="gc_detection/protos/$(basename "$proto" .proto)_pb2.py"
  [ "$module" -nt "$proto" ] || stale=1
  grep -q "^# Protobuf Python Version: $protobuf_major\." "$module" 2>/dev/null || stale=1
done
if [ "$stale" = 1 ]; then
  log "compiling protos/*.proto"
  # Without the start-up hook: it imports the very module being (re)written.
  GC_DETECTION_AUTOREGISTER=0 run_without_tf_noise "$VENV_PYTHON" dev/compile_protos.py
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
