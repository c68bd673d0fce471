#!/usr/bin/env bash
# Runs an exported detection model on images: COCO results JSON (+ pictures).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$REPO_ROOT/scripts/lib/flags.sh"

USAGE="usage: scripts/infer.sh --saved_model_dir=DIR --label_map_path=FILE --images=FILES --output_json=FILE [gc_detection.cli.infer flags]

Runs python -m gc_detection.cli.infer on the SavedModel written by scripts/export.sh
(--saved_model_dir: its --output_directory, or the saved_model/ inside it;
exported with --input_type=image_tensor), any OD API detection model, GC or not.

--images: JPEG/PNG files, directories (their *.jpg, *.jpeg, *.png) or globs;
  comma-separated and/or repeated.
--output_json: COCO detection results, bbox [x, y, width, height] in pixels of
  the original (EXIF-oriented) image; loads with pycocotools' COCO.loadRes.
Optional: --output_image_dir=DIR (pictures with the boxes drawn),
  --image_format=png|jpg, --score_threshold=0.3, --max_detections=100,
  --coco_annotations_file=FILE (image ids by file name; otherwise the numeric
  file stem, else a running id), --max_input_side=4096 (0: no downscaling).

Exit status: 0 all images processed; 1 some skipped (named on stderr with the
reason); 2 usage error."

case "${1:-}" in -h|--help) echo "$USAGE"; exit 0 ;; esac
require_flags "$USAGE" saved_model_dir label_map_path images output_json -- "$@"
bash "$REPO_ROOT/scripts/setup.sh" >/dev/null
run_without_tf_noise "$VENV_PYTHON" -m gc_detection.cli.infer "$@"
