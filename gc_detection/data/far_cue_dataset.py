r"""Writes a far-cue dataset: identical objects told apart only by the scene.

See gc_detection.data.far_cue_scenes for what the images show. Writes, into
--output_dir:

  train.tfrecord, val.tfrecord   OD API tf.Examples (PNG images)
  label_map.pbtxt                sun, egg_yolk, street_lamp (ids 1-3)
  val_coco.json                  COCO-format ground truth of the val split
                                 (image ids 1.., file names as in the records)
  val_images/                    the val images as PNG (for inference)
  dataset.json                   the generator's settings and counts

Deterministic in --seed (the val split uses seed + 1). Every file is written
atomically; progress goes to stderr.

Usage (scripts/demo.sh runs it):
  python -m gc_detection.cli.make_far_cue_dataset --output_dir=data/far_cue \
      [--num_train=400] [--num_val=100] [--size=256] [--cue_kinds=band,companion]
"""
import json
import os
import sys

from gc_detection import atomic_files
from gc_detection.data import far_cue_scenes


def progress(items, total, description):
  """tqdm on stderr (a plain counter line when tqdm is missing)."""
  try:
    import tqdm  # pylint: disable=g-import-not-at-top
  except ImportError:
    return items
  return tqdm.tqdm(items, total=total, desc=description, unit='image', file=sys.stderr,
                   mininterval=1.0)


def coco_ground_truth(scenes):
  """The COCO instances dict of [Scene]; image ids 1.., boxes [x, y, w, h]."""
  categories = [{'id': index, 'name': name, 'supercategory': 'far_cue'}
                for index, name in enumerate(far_cue_scenes.CLASSES, start=1)]
  images, annotations = [], []
  for image_id, scene in enumerate(scenes, start=1):
    example = scene.example
    height, width = example.image.shape[:2]
    images.append({'id': image_id, 'file_name': example.filename, 'height': height,
                   'width': width, 'cue_kind': scene.cue_kind, 'cue_edge': scene.cue_edge})
    for box, class_id in zip(example.boxes, example.class_ids):
      top, left, bottom, right = (float(value) for value in box)
      annotations.append({
          'id': len(annotations) + 1, 'image_id': image_id, 'category_id': int(class_id),
          'bbox': [left, top, right - left, bottom - top],
          'area': (right - left) * (bottom - top), 'iscrowd': 0})
  return {'images': images, 'annotations': annotations, 'categories': categories}


def write_dataset(output_dir, num_train, num_val, seed=0, spec=far_cue_scenes.SceneSpec(),
                  show_progress=True):
  """Writes the dataset files (module docstring); returns {name: path}."""
  from gc_detection.data import tf_example  # pylint: disable=g-import-not-at-top

  spec.check()
  if num_train < 1 or num_val < 1:
    raise ValueError(f'num_train, num_val: must be >= 1, got {num_train}, {num_val}')
  paths = {name: os.path.join(output_dir, file_name) for name, file_name in (
      ('train', 'train.tfrecord'), ('val', 'val.tfrecord'),
      ('label_map', 'label_map.pbtxt'), ('val_coco', 'val_coco.json'),
      ('val_images', 'val_images'), ('summary', 'dataset.json'))}
  progress_of = progress if show_progress else (lambda items, total, description: items)

  train = progress_of(far_cue_scenes.generate(seed, num_train, spec, 'train'), num_train,
                   'train split')
  tf_example.write_tfrecord(paths['train'], (scene.example for scene in train))
  val = list(progress_of(far_cue_scenes.generate(seed + 1, num_val, spec, 'val'), num_val,
                      'val split'))
  tf_example.write_tfrecord(paths['val'], (scene.example for scene in val))
  for scene in val:
    atomic_files.write_bytes(os.path.join(paths['val_images'], scene.example.filename),
                             tf_example.encode_png(scene.example.image))
  atomic_files.write_text(paths['label_map'],
                          tf_example.label_map_text(far_cue_scenes.CLASSES))
  atomic_files.write_text(paths['val_coco'], json.dumps(coco_ground_truth(val)))
  summary = {'seed': seed, 'num_train': num_train, 'num_val': num_val,
             'size': spec.size, 'cue_kinds': list(spec.cue_kinds),
             'max_objects': spec.max_objects, 'min_cue_distance': spec.min_cue_distance,
             'classes': list(far_cue_scenes.CLASSES),
             'c4_receptive_field': far_cue_scenes.C4_RECEPTIVE_FIELD}
  atomic_files.write_text(paths['summary'], json.dumps(summary, indent=2) + '\n')
  return paths

