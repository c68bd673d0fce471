#!/usr/bin/env bash
# The main job on a built-in default: sets up (if needed), builds Faster R-CNN
# ResNet-50 + global context from pipeline_configs/, reads a generated TFRecord
# through the OD API's input pipeline and runs one training step, printing the
# losses. Extra arguments go to gc_detection.tools.train_one_step
# (e.g. --num_steps=3 or --pipeline_config_path=...).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
bash "$REPO_ROOT/scripts/setup.sh"
run_without_tf_noise "$VENV_PYTHON" -m gc_detection.tools.train_one_step "$@"
