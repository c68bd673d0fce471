#!/usr/bin/env bash
# Sets up (if needed) and runs the test suite. Extra arguments go to pytest,
# e.g. scripts/test.sh -k proto
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
bash "$REPO_ROOT/scripts/setup.sh"
cd "$REPO_ROOT"
run_without_tf_noise "$VENV_PYTHON" -m pytest tests "$@"
