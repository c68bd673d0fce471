#!/usr/bin/env bash
# Semantic segmentation with global context on TF Model Garden, on a CPU.
#
# 1. sets up .venv if needed;
# 2. writes the far-cue strips into data/far_cue_segmentation
#    (gc_detection.data.far_cue_strips: identical disks that are a sun, an egg
#    yolk or a street lamp, told apart only by a band at the far end);
# 3. trains and evaluates the registered experiment seg_resnet50_fpn_gc_far_cue
#    with Model Garden's own trainer (python -m official.vision.train
#    --mode=train_and_eval) into models/far_cue_segmentation_gc;
# 4. prints the paper's Table 4 columns (mIoU, fwIoU, mACC, pACC) from the
#    trainer's evaluation (tabulate_evaluator_metrics --metrics=segmentation)
#    and writes an mIoU-vs-step plot;
# 5. exports a SavedModel with Model Garden's own exporter
#    (official.vision.serving.export_saved_model) into
#    exported/far_cue_segmentation_gc.
#
# Re-running reuses the dataset and resumes training from the model_dir.
# Flags: --num_steps=N (default: the experiment's 600), --experiment=NAME
#        (default seg_resnet50_fpn_gc_far_cue; seg_resnet50_fpn_far_cue is the
#        stock model), --model_dir=DIR.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$REPO_ROOT/scripts/lib/flags.sh"

case "${1:-}" in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
for argument in "$@"; do
  case "$argument" in
    --num_steps=*|--experiment=*|--model_dir=*) ;;
    *) echo "segmentation_demo.sh: unknown argument $argument (see --help)" >&2; exit 2 ;;
  esac
done
num_steps="$(flag_value num_steps "$@")"
experiment="$(flag_value experiment "$@")"; experiment="${experiment:-seg_resnet50_fpn_gc_far_cue}"
model_dir="$(flag_value model_dir "$@")"; model_dir="${model_dir:-models/far_cue_segmentation_gc}"
if [ -n "$num_steps" ] && ! [[ "$num_steps" =~ ^[1-9][0-9]*$ ]]; then
  echo "segmentation_demo.sh: --num_steps: expected a positive integer, got $num_steps" >&2
  exit 2
fi
overrides=""
[ -n "$num_steps" ] && overrides="--params_override=trainer.train_steps=$num_steps"

cd "$REPO_ROOT"
step "1/5 set-up"
bash scripts/setup.sh

data_dir=data/far_cue_segmentation
export_dir="exported/$(basename "$model_dir")"
step "2/5 dataset: far-cue strips into $data_dir"
if [ -f "$data_dir/dataset.json" ]; then
  log "reusing $data_dir"
else
  run_without_tf_noise "$VENV_PYTHON" -m gc_detection.cli.make_far_cue_segmentation_dataset \
    "--output_dir=$data_dir"
fi

step "3/5 training and evaluating $experiment (official.vision.train; a line every 100 steps)"
mkdir -p "$model_dir"
if ! run_without_tf_noise "$VENV_PYTHON" -m official.vision.train "--experiment=$experiment" \
    --mode=train_and_eval "--model_dir=$model_dir" ${overrides:+"$overrides"} 2>&1 |
    tee "$model_dir/train.log" |
    awk '/^[IWE][0-9][0-9][0-9][0-9] / { next }  # the absl-prefixed copy of each line
         /train \| step:|eval \| step:|'"'"'mIoU'"'"'|Error/ { print; fflush() }'; then
  echo "segmentation_demo.sh: training failed; see $model_dir/train.log" >&2
  exit 1
fi

step "4/5 the paper's Table 4 columns"
run_without_tf_noise "$VENV_PYTHON" -m gc_detection.cli.tabulate_evaluator_metrics \
  --metrics=segmentation "--run=$experiment=$model_dir" "--plot_out=$model_dir/miou.png"

step "5/5 export: official.vision.serving.export_saved_model into $export_dir"
rm -rf "$export_dir"
if ! run_without_tf_noise "$VENV_PYTHON" -m official.vision.serving.export_saved_model \
    "--experiment=$experiment" "--export_dir=$export_dir" \
    "--checkpoint_path=$model_dir" --batch_size=1 --input_image_size=64,448 \
    >"$model_dir/export.log" 2>&1; then
  tail -n 30 "$model_dir/export.log" >&2
  exit 1
fi
log "done in $(elapsed): model $model_dir, mIoU plot $model_dir/miou.png, SavedModel $export_dir/saved_model"
