"""COCO panoptic annotations as Panoptic FPN TFRecords (paper Table 5).

The category ids are gc_detection.model_garden.panoptic_fusion's: 0 void,
1..T the thing categories (isthing=1) in increasing COCO category-id order,
T+1..T+S the stuff categories likewise; COCO 2017 has T = 80, S = 53.
Instances are the thing segments: each gets an instance id 1..n in its
image (the order of `segments_info`), a box and a mask from its pixels, and
the Mask R-CNN `is_crowd` flag from `iscrowd`. Crowd segments are void in the
panoptic masks (PQ ignores them; COCO's own PQ ignores them for their own
category only) and are skipped by the trainer like official.vision's Mask
R-CNN skips crowds.

Each tf.train.Example is gc_detection.data.panoptic_records' (the image's
original bytes); shards `<output_dir>/<split>-0000i-of-000NN.tfrecord` are
written as gc_detection.data.coco_semantic writes its own, and the categories
go to `<output_dir>/categories.json`.
"""
import json
import os

import numpy as np

from gc_detection import atomic_files
from gc_detection.data import coco_semantic

CATEGORIES_FILE = 'categories.json'
MAX_INSTANCES = 255


def label_space(categories, path):
  """The panoptic category ids of a panoptic JSON's `categories` (read from path).

  Returns:
    ({COCO category id: panoptic category id}, the categories.json dict:
    {'num_thing_classes': T, 'num_stuff_classes': S, 'names': ['void', ...],
    'coco_category_ids': [None, ...]}).
  """
  ids = [category['id'] for category in categories]
  twice = sorted({category_id for category_id in ids if ids.count(category_id) > 1})
  if twice:
    raise coco_semantic.PanopticFormatError(f'{path}: category id {twice[0]} is used twice')
  ordered = (sorted((c for c in categories if c['isthing']), key=lambda c: c['id'])
             + sorted((c for c in categories if not c['isthing']), key=lambda c: c['id']))
  if len(ordered) > 255:
    raise coco_semantic.PanopticFormatError(
        f'{path}: {len(ordered)} categories; at most 255 fit a uint8 category mask')
  num_things = sum(1 for c in categories if c['isthing'])
  return ({c['id']: index for index, c in enumerate(ordered, start=1)},
          {'num_thing_classes': num_things,
           'num_stuff_classes': len(ordered) - num_things,
           'names': ['void'] + [c['name'] for c in ordered],
           'coco_category_ids': [None] + [c['id'] for c in ordered]})


def panoptic_masks(panoptic_rgb, segments_info, category_to_panoptic, num_thing_classes,
                   source='panoptic PNG'):
  """Masks and instances of one panoptic PNG.

  Args:
    panoptic_rgb: uint8 (H, W, 3), the panoptic PNG's pixels.
    segments_info: the annotation's segments (id, category_id, iscrowd).
    category_to_panoptic: {COCO category id: panoptic id}, from label_space.
    num_thing_classes: T.
    source: names the PNG in errors.
  Returns:
    dict: category_mask, instance_mask uint8 (H, W); boxes float (N, 4)
    [ymin, xmin, ymax, xmax] px; classes int (N,); instance_masks uint8
    (N, H, W); is_crowd bool (N,).
  Raises:
    PanopticFormatError: an unknown category, or more than 255 instances.
  """
  category_of = coco_semantic.segment_classes(segments_info, category_to_panoptic, source)
  crowd = {segment.get('id') for segment in segments_info if segment.get('iscrowd')}
  ids = coco_semantic.panoptic_ids(panoptic_rgb)
  height, width = ids.shape
  category = np.zeros((height, width), np.uint8)
  instance = np.zeros((height, width), np.uint8)
  boxes, classes, masks, is_crowd = [], [], [], []
  for segment_id, category_id in category_of.items():
    mask = ids == segment_id
    if not mask.any():
      continue
    is_thing = category_id <= num_thing_classes
    if is_thing:
      rows, cols = np.nonzero(mask)
      boxes.append([rows.min(), cols.min(), rows.max() + 1, cols.max() + 1])
      classes.append(category_id)
      masks.append(mask.astype(np.uint8))
      is_crowd.append(segment_id in crowd)
    if segment_id in crowd:
      continue
    category[mask] = category_id
    if is_thing:
      instance_id = int(instance.max()) + 1
      if instance_id > MAX_INSTANCES:
        raise coco_semantic.PanopticFormatError(
            f'{source}: more than {MAX_INSTANCES} thing segments; instance ids are uint8')
      instance[mask] = instance_id
  return {'category_mask': category, 'instance_mask': instance,
          'boxes': np.asarray(boxes, np.float64).reshape(-1, 4),
          'classes': np.asarray(classes, np.int64),
          'instance_masks': np.asarray(masks, np.uint8).reshape(-1, height, width),
          'is_crowd': np.asarray(is_crowd, bool)}


def to_example(image_info, annotation, image_dir, masks_dir, category_to_panoptic,
               num_thing_classes):
  """The panoptic_records.PanopticExample of one JSON image and its annotation."""
  from gc_detection.data import panoptic_records  # pylint: disable=g-import-not-at-top
  image_path = os.path.join(image_dir, image_info['file_name'])
  png_path = os.path.join(masks_dir, annotation['file_name'])
  encoded, image_format, size = coco_semantic.read_image(image_path)
  panoptic_rgb = coco_semantic.read_panoptic_png(png_path)
  if panoptic_rgb.shape[:2] != size:
    raise coco_semantic.PanopticFormatError(
        f'{png_path} is {panoptic_rgb.shape[:2]} (H, W) but {image_path} is {size}')
  masks = panoptic_masks(panoptic_rgb, annotation['segments_info'], category_to_panoptic,
                         num_thing_classes, source=png_path)
  return panoptic_records.PanopticExample(
      image_id=image_info['id'], height=size[0], width=size[1], encoded_image=encoded,
      image_format=image_format, filename=image_info['file_name'], **masks)


def write_split(annotations_file, masks_dir, image_dir, output_dir, split, num_shards,
                max_images=None, progress_every=500):
  """Writes one split's shards and categories.json; returns a summary dict."""
  from gc_detection.data import panoptic_records  # pylint: disable=g-import-not-at-top
  panoptic = coco_semantic.load_panoptic(annotations_file)
  category_to_panoptic, categories = label_space(panoptic['categories'], annotations_file)
  pairs = coco_semantic.images_to_convert(panoptic, annotations_file, masks_dir,
                                          category_to_panoptic, max_images)

  def make_example(image_info, annotation):
    return panoptic_records.to_tf_example(to_example(
        image_info, annotation, image_dir, masks_dir, category_to_panoptic,
        categories['num_thing_classes']))

  paths, stale = coco_semantic.write_shards(pairs, make_example, output_dir, split,
                                            num_shards, progress_every)
  categories_file = os.path.join(output_dir, CATEGORIES_FILE)
  atomic_files.write_text(categories_file, json.dumps(categories, indent=1) + '\n')
  return {'num_images': len(pairs), 'shards': paths, 'removed': stale,
          'categories_file': categories_file, **categories}
