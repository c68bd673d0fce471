#!/usr/bin/env bash
# Trains (or evaluates) a model with the OD API's own, unmodified model_main_tf2.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$REPO_ROOT/scripts/lib/flags.sh"

USAGE="usage: scripts/train.sh --pipeline_config_path=FILE --model_dir=DIR [model_main_tf2 flags]

Trains with python -m object_detection.model_main_tf2 (GC types are registered
automatically). With --checkpoint_dir=DIR it evaluates the checkpoints in DIR
instead (COCO metrics), writing to --model_dir.

Common flags: --num_train_steps=N (rounded up to a multiple of 100 by the
stock trainer), --checkpoint_every_n=N, --alsologtostderr.
Run from the checkout root: the configs' relative paths start there."

case "${1:-}" in -h|--help) echo "$USAGE"; exit 0 ;; esac
require_flags "$USAGE" pipeline_config_path model_dir -- "$@"
config="$(flag_value pipeline_config_path "$@")"
if [ ! -f "$config" ]; then
  echo "train.sh: --pipeline_config_path: no such file: $config" >&2
  exit 2
fi
if grep -q PATH_TO_BE_CONFIGURED "$config"; then
  echo "train.sh: $config still contains PATH_TO_BE_CONFIGURED; set the data and checkpoint paths first (WORKSPACE.md)" >&2
  exit 2
fi
bash "$REPO_ROOT/scripts/setup.sh" >/dev/null
run_without_tf_noise "$VENV_PYTHON" -m object_detection.model_main_tf2 "$@"
