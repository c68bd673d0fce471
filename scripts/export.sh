#!/usr/bin/env bash
# Exports a trained model as a SavedModel with the OD API's own exporter_main_v2.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$REPO_ROOT/scripts/lib/flags.sh"

USAGE="usage: scripts/export.sh --pipeline_config_path=FILE --trained_checkpoint_dir=DIR --output_directory=DIR [exporter_main_v2 flags]

Runs python -m object_detection.exporter_main_v2 (GC types are registered
automatically); --input_type defaults to image_tensor (uint8 images, any size).
Pass the pipeline.config the model was trained with."

case "${1:-}" in -h|--help) echo "$USAGE"; exit 0 ;; esac
require_flags "$USAGE" pipeline_config_path trained_checkpoint_dir output_directory -- "$@"
config="$(flag_value pipeline_config_path "$@")"
if [ ! -f "$config" ]; then
  echo "export.sh: --pipeline_config_path: no such file: $config" >&2
  exit 2
fi
checkpoint_dir="$(flag_value trained_checkpoint_dir "$@")"
if [ ! -f "$checkpoint_dir/checkpoint" ]; then
  echo "export.sh: --trained_checkpoint_dir: no checkpoint in $checkpoint_dir (expected a 'checkpoint' file written by the trainer)" >&2
  exit 2
fi
extra=()
[ -n "$(flag_value input_type "$@")" ] || extra+=(--input_type=image_tensor)
bash "$REPO_ROOT/scripts/setup.sh" >/dev/null
# exporter_main_v2 parses the file itself (a bare protobuf traceback on a bad
# file): read it first through gc_detection's reader, which names file, line
# and field.
run_without_tf_noise "$VENV_PYTHON" -c '
import sys
from gc_detection.od_api import pipeline_files
try:
  pipeline_files.read_pipeline(sys.argv[1])
except pipeline_files.PipelineConfigError as error:
  sys.exit(f"export.sh: --pipeline_config_path: {error}")' "$config" || exit 2
run_without_tf_noise "$VENV_PYTHON" -m object_detection.exporter_main_v2 "${extra[@]}" "$@"
