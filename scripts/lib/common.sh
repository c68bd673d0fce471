# Shared by the scripts in scripts/: paths, the TensorFlow log level, and a
# filter for TensorFlow's known start-up noise. Source it; do not run it.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# One venv per stack (GC_STACK, see setup.sh): .venv holds the default tf215.
case "${GC_STACK:-tf215}" in
  tf215) VENV="${GC_VENV:-$REPO_ROOT/.venv}" ;;
  *) VENV="${GC_VENV:-$REPO_ROOT/.venv-$GC_STACK}" ;;
esac
VENV_PYTHON="$VENV/bin/python"

# 2 = hide TensorFlow's C++ INFO and WARNING lines (oneDNN notices, CPU feature
# notes); ERROR and FATAL still print. A caller's own setting wins.
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

# Lines TensorFlow 2.15 prints on every start on machines without a GPU (the
# CUDA plugins are registered twice, TensorRT is absent; 2.20 words cuInit's
# failure differently), and one XLA prints
# on the CPU when it compiles. Only these exact
# messages are dropped; every other line of stderr passes through.
TF_STARTUP_NOISE='Unable to register cu(DNN|FFT|BLAS) factory: Attempting to register factory for plugin cu(DNN|FFT|BLAS) when one has already been registered|TF-TRT Warning: Could not find TensorRT|failed call to cuInit: (INTERNAL: CUDA error: Failed call to cuInit: )?UNKNOWN ERROR \(303\)|SetPriority unimplemented for this stream'

# Runs a command with TF_STARTUP_NOISE removed from its stderr; returns the
# command's own exit status.
run_without_tf_noise() {
  local status
  { "$@" 2>&1 1>&3 3>&- |
      { grep -v -E --line-buffered "$TF_STARTUP_NOISE" >&2 || true; }
    status=${PIPESTATUS[0]}; } 3>&1
  return "$status"
}

# Prints the requirement lines of pin file $2, either only the [no-deps]
# section ("no-deps") or every other section ("all-but-no-deps").
requirements_section() {
  awk -v want="$1" '
    /^# *\[[a-z-]+\] *$/ { in_no_deps = ($0 ~ /\[no-deps\]/); next }
    /^[[:space:]]*(#|$)/ { next }
    (want == "no-deps") == in_no_deps { print }' "$2"
}

log() { printf '[%s] %s\n' "$(basename "$0" .sh)" "$*"; }

# Progress lines of the long scripts, with the time since the script started:
# step "2/5 dataset" prints [<script>] [m:ss] 2/5 dataset.
script_started=$SECONDS
elapsed() { printf '%d:%02d' $(((SECONDS - script_started) / 60)) $(((SECONDS - script_started) % 60)); }
step() { log "[$(elapsed)] $*"; }
