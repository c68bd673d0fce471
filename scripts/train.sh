#!/usr/bin/env bash
# Trains (or evaluates) a model with the OD API's own, unmodified model_main_tf2.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$REPO_ROOT/scripts/lib/flags.sh"

USAGE="usage: scripts/train.sh --pipeline_config_path=FILE --model_dir=DIR [model_main_tf2 flags]

Trains with python -m object_detection.model_main_tf2 (GC types are registered
automatically). With --checkpoint_dir=DIR it evaluates the checkpoints in DIR
instead (COCO metrics), writing to --model_dir.

Two phases: when the config's gc_detection extension
([gc_detection.protos.global_context] { ... }) has
training_phases { first_phase_steps: N1 second_phase_optimizer { ... } }, the
stock trainer runs twice in the same model_dir: train_config.optimizer up to
step N1, then (from the phase-1 weights, with fresh optimizer state) the
second optimizer up to train_config.num_steps. Re-running resumes either phase.

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
if grep -v '^[[:space:]]*#' "$config" | grep PATH_TO_BE_CONFIGURED >/dev/null; then
  echo "train.sh: $config still contains PATH_TO_BE_CONFIGURED; set the data and checkpoint paths first (WORKSPACE.md)" >&2
  exit 2
fi
bash "$REPO_ROOT/scripts/setup.sh" >/dev/null

train() { run_without_tf_noise "$VENV_PYTHON" -m object_detection.model_main_tf2 "$@"; }

if [ -n "$(flag_value checkpoint_dir "$@")" ]; then
  train "$@"  # evaluation
  exit
fi

model_dir="$(flag_value model_dir "$@")"
plan_args=(--action=plan "--pipeline_config_path=$config" "--model_dir=$model_dir")
for name in num_train_steps checkpoint_every_n; do
  value="$(flag_value "$name" "$@")"
  [ -z "$value" ] || plan_args+=("--$name=$value")
done
# A schedule or flag the plan rejects is wrong input: exit 2, as above.
plan="$(run_without_tf_noise "$VENV_PYTHON" -m gc_detection.cli.training_phases "${plan_args[@]}")" ||
  { status=$?; exit $((status == 1 ? 2 : status)); }
eval "$plan"  # sets phases, first_phase_steps, total_steps, current_step, ...
if [ "$phases" = 1 ]; then
  train "$@"
  exit
fi

mapfile -d '' rest < <(without_flags pipeline_config_path num_train_steps checkpoint_every_n -- "$@")
if [ "$current_step" -lt "$first_phase_steps" ]; then
  log "phase 1 of 2: train_config.optimizer, steps $current_step -> $first_phase_steps"
  train "--pipeline_config_path=$config" "--num_train_steps=$first_phase_steps" \
    "--checkpoint_every_n=$phase1_checkpoint_every_n" "${rest[@]}"
fi
if [ "$phase2_started" != 1 ]; then
  reached="$("$VENV_PYTHON" -c 'import sys; from gc_detection.od_api.training import final_checkpoint as f; print(f.latest_step(sys.argv[1]))' "$model_dir")"
  if [ "$reached" != "$first_phase_steps" ]; then
    echo "train.sh: phase 1 should end at step $first_phase_steps, but the latest checkpoint in $model_dir is at step $reached; not starting phase 2" >&2
    exit 1
  fi
  log "switching optimizers at step $first_phase_steps (phase-2 config: $phase2_config)"
  run_without_tf_noise "$VENV_PYTHON" -m gc_detection.cli.training_phases --action=switch \
    "--pipeline_config_path=$phase2_config" "--model_dir=$model_dir"
fi
log "phase 2 of 2: second_phase_optimizer, steps -> $total_steps"
train "--pipeline_config_path=$phase2_config" "--num_train_steps=$total_steps" \
  "--checkpoint_every_n=$phase2_checkpoint_every_n" "${rest[@]}"
