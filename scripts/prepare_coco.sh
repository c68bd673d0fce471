#!/usr/bin/env bash
# Builds COCO-format TFRecords with the OD API's own create_coco_tf_record.py,
# and the label map from the instances JSON.
#
# The stock tool insists on a test-dev split as well (it asserts on
# --test_image_dir and --testdev_annotations_file). This script gives it an
# empty test-dev JSON (no images) and deletes the empty shards it writes, so a
# train + val pair is enough. It also renames the shards to the layout the
# shipped configs and WORKSPACE.md use.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$REPO_ROOT/scripts/lib/flags.sh"

USAGE="usage: scripts/prepare_coco.sh --output_dir=DIR \\
         --train_image_dir=DIR --train_annotations_file=FILE \\
         --val_image_dir=DIR --val_annotations_file=FILE [--include_masks]
   or: scripts/prepare_coco.sh --output_dir=DIR --download [--download_dir=DIR] [--include_masks]

Runs python -m object_detection.dataset_tools.create_coco_tf_record on a
COCO-format train/val pair (JPEG directories and instances JSON files) and
writes into --output_dir:
  train2017-?????-of-00100.tfrecord   (the stock tool's 100 train shards)
  val2017-?????-of-00050.tfrecord     (its 50 val shards)
  label_map.pbtxt                     (from the JSON's categories)
Point the pipeline.config's input_path and label_map_path there.

--download fetches the official COCO 2017 zips (train2017, val2017,
annotations_trainval2017; about 19 GB) into --download_dir (default:
OUTPUT_DIR/raw) with curl or wget, unpacks them, and uses them as the inputs.
Nothing is downloaded without it. --include_masks adds the instance masks
(for Mask R-CNN). Flags take the --flag=value form."

COCO_ZIPS=(
  http://images.cocodataset.org/zips/train2017.zip
  http://images.cocodataset.org/zips/val2017.zip
  http://images.cocodataset.org/annotations/annotations_trainval2017.zip
)

die() { echo "prepare_coco.sh: $*" >&2; exit 2; }

case "${1:-}" in -h|--help) echo "$USAGE"; exit 0 ;; esac

download=0
include_masks=0
for arg in "$@"; do
  case "$arg" in
    --download) download=1 ;;
    --include_masks) include_masks=1 ;;
    --output_dir=*|--download_dir=*|--train_image_dir=*|--val_image_dir=*) ;;
    --train_annotations_file=*|--val_annotations_file=*) ;;
    *) printf 'prepare_coco.sh: unknown argument: %s\n\n%s\n' "$arg" "$USAGE" >&2
       exit 2 ;;
  esac
done

if [ "$download" = 1 ]; then
  require_flags "$USAGE" output_dir -- "$@"
else
  require_flags "$USAGE" output_dir train_image_dir train_annotations_file \
    val_image_dir val_annotations_file -- "$@"
fi
output_dir="$(flag_value output_dir "$@")"

# Downloads $1 to $2 unless $2 exists; resumes a partial download ($2.part).
fetch() {
  local url="$1" dest="$2"
  [ -f "$dest" ] && return 0
  log "downloading $url"
  if command -v curl >/dev/null; then
    curl -fL --retry 3 -C - -o "$dest.part" "$url"
  elif command -v wget >/dev/null; then
    wget -c -O "$dest.part" "$url"
  else
    die "--download needs curl or wget"
  fi
  mv "$dest.part" "$dest"
}

# Unpacks zip $1 into directory $2 unless $2/$3 (what the zip holds) exists;
# unpacks into a temporary directory first so a partial unpack is never used.
unpack() {
  local zip="$1" into="$2" holds="$3" staging
  [ -e "$into/$holds" ] && return 0
  log "unpacking $(basename "$zip")"
  staging="$(mktemp -d "$into/.unpack.XXXXXX")"
  "$VENV_PYTHON" -m zipfile -e "$zip" "$staging"
  mv "$staging/$holds" "$into/$holds"
  rm -rf "$staging"
}

if [ "$download" = 1 ]; then
  raw="$(flag_value download_dir "$@")"
  raw="${raw:-$output_dir/raw}"
  mkdir -p "$raw"
  for url in "${COCO_ZIPS[@]}"; do fetch "$url" "$raw/$(basename "$url")"; done
  unpack "$raw/train2017.zip" "$raw" train2017
  unpack "$raw/val2017.zip" "$raw" val2017
  unpack "$raw/annotations_trainval2017.zip" "$raw" annotations
  train_image_dir="$raw/train2017"
  val_image_dir="$raw/val2017"
  train_annotations_file="$raw/annotations/instances_train2017.json"
  val_annotations_file="$raw/annotations/instances_val2017.json"
else
  train_image_dir="$(flag_value train_image_dir "$@")"
  val_image_dir="$(flag_value val_image_dir "$@")"
  train_annotations_file="$(flag_value train_annotations_file "$@")"
  val_annotations_file="$(flag_value val_annotations_file "$@")"
fi

for name in train_image_dir val_image_dir; do
  [ -d "${!name}" ] || die "--$name: no such directory: ${!name}"
done
for name in train_annotations_file val_annotations_file; do
  [ -f "${!name}" ] || die "--$name: no such file: ${!name} (expected a COCO instances JSON)"
done

bash "$REPO_ROOT/scripts/setup.sh" >/dev/null
mkdir -p "$output_dir"
# Everything is built in a staging directory inside output_dir (same file
# system) and moved into place file by file at the end, so output_dir never
# holds a half-written shard; an interrupted run leaves only the staging
# directory, which the trap removes.
staging="$(mktemp -d "$output_dir/.prepare_coco.XXXXXX")"
trap 'rm -rf "$staging"' EXIT

log "checking the categories and writing the label map"
# Instances JSONs it rejects (exit 1, the message says why) are wrong input: exit 2.
run_without_tf_noise "$VENV_PYTHON" -m gc_detection.cli.coco_label_map \
  --annotations_file="$train_annotations_file" \
  --annotations_file="$val_annotations_file" \
  --output_path="$staging/label_map.pbtxt" ||
  { status=$?; exit $((status == 1 ? 2 : status)); }

# The stock tool requires a test-dev split; give it one without images.
echo '{"images": [], "annotations": [], "categories": []}' > "$staging/no_testdev.json"
masks=()
[ "$include_masks" = 1 ] && masks=(--include_masks)
log "converting with object_detection.dataset_tools.create_coco_tf_record"
run_without_tf_noise "$VENV_PYTHON" -m object_detection.dataset_tools.create_coco_tf_record \
  --logtostderr "${masks[@]}" \
  --train_image_dir="$train_image_dir" \
  --train_annotations_file="$train_annotations_file" \
  --val_image_dir="$val_image_dir" \
  --val_annotations_file="$val_annotations_file" \
  --test_image_dir="$val_image_dir" \
  --testdev_annotations_file="$staging/no_testdev.json" \
  --output_dir="$staging"
rm -f "$staging"/coco_testdev.record-* "$staging/no_testdev.json"

# coco_train.record-00007-of-00100 -> train2017-00007-of-00100.tfrecord
for shard in "$staging"/coco_train.record-* "$staging"/coco_val.record-*; do
  base="$(basename "$shard")"
  split="${base%%.record-*}"
  split="${split#coco_}2017"
  mv "$shard" "$staging/$split-${base#*.record-}.tfrecord"
done
for file in "$staging"/*.tfrecord "$staging/label_map.pbtxt"; do
  mv -f "$file" "$output_dir/"
done
log "wrote $output_dir/train2017-?????-of-00100.tfrecord," \
  "$output_dir/val2017-?????-of-00050.tfrecord and $output_dir/label_map.pbtxt"
