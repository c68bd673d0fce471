#!/usr/bin/env bash
# Sets up (if needed) and runs the test suite. Extra arguments go to pytest,
# e.g. scripts/test.sh -k proto; test files among them (tests/...) replace the
# whole suite, e.g. scripts/test.sh tests/test_infer.py
#
# The tests run in GC_TEST_WORKERS processes (default 2; 1 runs them in this
# one), a test file per worker at a time (pytest-xdist --dist loadfile), so a
# file's module fixtures are built once. Each worker takes a few GiB at peak.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
bash "$REPO_ROOT/scripts/setup.sh"
cd "$REPO_ROOT"
targets=(tests)
for argument in "$@"; do
  case "$argument" in tests/*|./tests/*) targets=(); break ;; esac
done
workers="${GC_TEST_WORKERS:-2}"
parallel=()
if [ "$workers" != 1 ]; then
  parallel=(--numprocesses="$workers" --dist=loadfile)
fi
run_without_tf_noise "$VENV_PYTHON" -m pytest "${parallel[@]}" "${targets[@]}" "$@"
