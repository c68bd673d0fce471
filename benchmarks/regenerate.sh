#!/usr/bin/env bash
# Regenerates BENCHMARKS.md: runs every benchmark, each rewriting its own
# section, which records its wall time (together a few hours on an idle
# 2-core machine); run nothing else meanwhile.
# Extra arguments go to end_to_end.py, e.g. --pairs=retinanet_r50 --sizes=640
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"
cd "$REPO_ROOT"
log "layer benchmark (about 5 minutes)"
run_without_tf_noise "$VENV_PYTHON" benchmarks/attention.py --markdown BENCHMARKS.md
log "end-to-end benchmark (about 55 minutes)"
run_without_tf_noise "$VENV_PYTHON" benchmarks/end_to_end.py --markdown=BENCHMARKS.md "$@"
log "far-cue benchmark (about 40 minutes)"
run_without_tf_noise "$VENV_PYTHON" benchmarks/far_cue.py --markdown=BENCHMARKS.md \
  --plot=benchmarks/figures/far_cue_ap_vs_step.png
log "far-cue segmentation benchmark (Model Garden)"
run_without_tf_noise "$VENV_PYTHON" benchmarks/far_cue_segmentation.py --markdown=BENCHMARKS.md \
  --plot=benchmarks/figures/far_cue_segmentation_miou_vs_step.png \
  --pictures=benchmarks/figures/far_cue_segmentation_masks.png
log "far-cue panoptic benchmark (Model Garden; about 4 hours)"
run_without_tf_noise "$VENV_PYTHON" benchmarks/far_cue_panoptic.py --markdown=BENCHMARKS.md \
  --plot=benchmarks/figures/far_cue_panoptic_pq_vs_step.png \
  --pictures=benchmarks/figures/far_cue_panoptic_predictions.png
log "ignoring padding at the paper's resize (about 45 minutes)"
run_without_tf_noise "$VENV_PYTHON" benchmarks/padded_inputs.py --markdown=BENCHMARKS.md
log "padding effect (about 2 minutes)"
run_without_tf_noise "$VENV_PYTHON" benchmarks/padding_effect.py --markdown=BENCHMARKS.md
log "crash-resume benchmark (about 25 minutes)"
run_without_tf_noise "$VENV_PYTHON" benchmarks/crash_resume.py --trials=5 --markdown=BENCHMARKS.md
log "BENCHMARKS.md regenerated"
