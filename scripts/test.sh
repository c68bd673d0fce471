#!/usr/bin/env bash
# Sets up (if needed) and runs the test suite. Extra arguments go to pytest,
# e.g. scripts/test.sh -k proto; test files among them (tests/...) replace the
# whole suite, e.g. scripts/test.sh tests/test_infer.py
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
bash "$REPO_ROOT/scripts/setup.sh"
cd "$REPO_ROOT"
targets=(tests)
for argument in "$@"; do
  case "$argument" in tests/*|./tests/*) targets=(); break ;; esac
done
run_without_tf_noise "$VENV_PYTHON" -m pytest "${targets[@]}" "$@"
