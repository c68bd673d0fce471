#!/usr/bin/env bash
# The main job on a built-in default: the far-cue demo, on a CPU.
#
# 1. sets up .venv if needed;
# 2. writes the far-cue dataset into data/far_cue (gc_detection.data.far_cue_scenes:
#    the same yellow disk is a sun, an egg yolk or a street lamp, told apart
#    only by a cue far from it);
# 3. trains pipeline_configs/far_cue/faster_rcnn_resnet50_gc_far_cue.config with
#    scripts/train.sh (the OD API's own model_main_tf2) into models/far_cue_demo_gc;
# 4. evaluates the last checkpoint: the stock evaluator (COCO metrics) and
#    pycocotools per class (python -m gc_detection.cli.evaluate_every_checkpoint);
# 5. exports a SavedModel with scripts/export.sh (the stock exporter_main_v2);
# 6. runs scripts/infer.sh on a few held-out images (pictures with boxes) and
#    draws the module's attention maps for them;
# 7. prints where everything is.
#
# About 12 minutes on 2 CPU cores (plus set-up on a fresh machine). Re-running
# reuses the dataset and resumes training from the model_dir.
# Flags: --num_steps=N (default 600, a multiple of 100), --num_train=N (400),
#        --num_val=N (60), --seed=N (GC_DETECTION_SEED, default 0).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$REPO_ROOT/scripts/lib/flags.sh"

case "${1:-}" in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
for argument in "$@"; do
  case "$argument" in
    --num_steps=*|--num_train=*|--num_val=*|--seed=*) ;;
    *) echo "demo.sh: unknown argument $argument (see --help)" >&2; exit 2 ;;
  esac
done
num_steps="$(flag_value num_steps "$@")"; num_steps="${num_steps:-600}"
num_train="$(flag_value num_train "$@")"; num_train="${num_train:-400}"
num_val="$(flag_value num_val "$@")"; num_val="${num_val:-60}"
seed="$(flag_value seed "$@")"; seed="${seed:-0}"
if ! [[ "$num_steps" =~ ^[1-9][0-9]*00$ ]]; then
  echo "demo.sh: --num_steps: expected a positive multiple of 100, got $num_steps" >&2
  exit 2
fi

# Runs a command with its output in log file $1; shows the log's end if it fails.
quietly() {
  local log_file="$1"; shift
  if ! "$@" >"$log_file" 2>&1; then
    tail -n 30 "$log_file" >&2
    echo "demo.sh: failed: $* (log: $log_file)" >&2
    exit 1
  fi
}

cd "$REPO_ROOT"
step "1/7 set-up"
bash scripts/setup.sh

data_dir=data/far_cue
config=pipeline_configs/far_cue/faster_rcnn_resnet50_gc_far_cue.config
model_dir=models/far_cue_demo_gc
export_dir=exported/far_cue_demo_gc
out_dir=runs/far_cue_demo
mkdir -p "$out_dir"

step "2/7 dataset: $num_train training and $num_val held-out images into $data_dir"
wanted="\"num_train\": $num_train, \"num_val\": $num_val"
if [ -f "$data_dir/dataset.json" ] && tr -d '\n ' < "$data_dir/dataset.json" |
    grep -q "\"num_train\":$num_train,\"num_val\":$num_val,"; then
  log "reusing $data_dir ($wanted)"
else
  run_without_tf_noise "$VENV_PYTHON" -m gc_detection.cli.make_far_cue_dataset \
    "--output_dir=$data_dir" "--num_train=$num_train" "--num_val=$num_val"
fi

step "3/7 training $config for $num_steps steps (stock model_main_tf2; a line every 100 steps)"
if ! GC_DETECTION_SEED="$seed" bash scripts/train.sh "--pipeline_config_path=$config" \
    "--model_dir=$model_dir" "--num_train_steps=$num_steps" --checkpoint_every_n=100 \
    --alsologtostderr 2>&1 |
    awk '/^INFO:tensorflow:Step [0-9]+ per-step time/ { step = $2; time = $5; next }
         /Loss\/total_loss/ && step != "" { gsub(/[,}]/, "", $2); gsub(/^np\.float[0-9]*\(|\)$/, "", $2);  # numpy 2 repr
           printf "  step %s: %s per step, total loss %s\n", step, time, $2; fflush(); step = "" }
         /Error|error:/ { print; fflush() }'; then
  echo "demo.sh: training failed (run the train.sh command above without the filter to see all)" >&2
  exit 1
fi

step "4/7 evaluation: stock evaluator (COCO metrics), then pycocotools per class"
bash scripts/train.sh "--pipeline_config_path=$config" "--model_dir=$model_dir/eval_run" \
  "--checkpoint_dir=$model_dir" --eval_timeout=0 --alsologtostderr 2>&1 |
  { grep --line-buffered -E "Average Precision|Average Recall" || true; }
run_without_tf_noise "$VENV_PYTHON" -m gc_detection.cli.evaluate_every_checkpoint \
  "--pipeline_config_path=$config" "--model_dir=$model_dir" --latest_only \
  "--coco_annotations_file=$data_dir/val_coco.json" "--image_dir=$data_dir/val_images" \
  "--output=$out_dir/coco_metrics.json"

step "5/7 export: stock exporter_main_v2 into $export_dir"
rm -rf "$export_dir"
quietly "$out_dir/export.log" bash scripts/export.sh "--pipeline_config_path=$config" \
  "--trained_checkpoint_dir=$model_dir" "--output_directory=$export_dir"

step "6/7 inference and attention maps on 6 held-out images"
images=()
while IFS= read -r image; do images+=("--images=$image"); done < <(
  find "$data_dir/val_images" -name '*.png' | sort | head -n 6)
bash scripts/infer.sh "--saved_model_dir=$export_dir" \
  "--label_map_path=$data_dir/label_map.pbtxt" "${images[@]}" \
  "--coco_annotations_file=$data_dir/val_coco.json" \
  "--output_json=$out_dir/detections.json" "--output_image_dir=$out_dir/detections"
attention_images="$(printf '%s\n' "${images[@]#--images=}" | head -n 3 | paste -sd, -)"
quietly "$out_dir/attention.log" "$VENV_PYTHON" -m gc_detection.cli.attention_maps \
  "--pipeline_config_path=$config" "--checkpoint=$model_dir" \
  "--images=$attention_images" --top_detections=2 "--output_dir=$out_dir/attention"
log "attention maps of 3 images (2 detections each) in $out_dir/attention"

step "7/7 done"
"$VENV_PYTHON" - "$out_dir/coco_metrics.json" <<'EOF'
import json, sys
metrics = json.load(open(sys.argv[1]))[-1]
accuracy = metrics['class_accuracy']
print(f"  step {metrics['step']}: AP {metrics['AP']:.1f}, AP50 {metrics['AP50']:.1f}, "
      + ', '.join(f'{name} {ap:.1f}' for name, ap in metrics['per_class'].items())
      + '; class accuracy of found objects '
      + (f'{accuracy:.0f}% (chance: 33%)' if accuracy is not None else '-'))
EOF
cat <<EOF
  dataset:          $data_dir (train.tfrecord, val.tfrecord, label_map.pbtxt, val_coco.json)
  config:           $config
  checkpoints:      $model_dir (TensorBoard: $model_dir/train, $model_dir/eval_run/eval)
  metrics:          $out_dir/coco_metrics.json
  SavedModel:       $export_dir/saved_model
  detections:       $out_dir/detections.json, pictures in $out_dir/detections/
  attention maps:   $out_dir/attention/
  wall time:        $(elapsed)
The stock baseline on the same data: benchmarks/far_cue.py (BENCHMARKS.md).
EOF
