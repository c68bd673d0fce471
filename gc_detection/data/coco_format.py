"""Writes a tiny generated dataset in COCO's own on-disk format.

The real COCO flow starts from JPEG files and an `instances_*.json`, and the
OD API's `create_coco_tf_record.py` turns those into TFRecords. COCO itself
cannot be downloaded everywhere (not on the test machines), so the tests and
demos run that same flow on this stand-in: the coloured rectangles of
`gc_detection.data.shapes`, saved as JPEGs, with an instances JSON holding
`images`, `annotations` (bbox `[x, y, width, height]` in pixels, `area`,
`iscrowd: 0`, a rectangle polygon as `segmentation`) and `categories`.
Everything is deterministic in the seed.
"""
import json
import os

import numpy as np
from PIL import Image

from gc_detection import atomic_files
from gc_detection.data import shapes


def categories():
  """Returns the COCO `categories` list: one per shape class, ids 1, 2, ..."""
  return [{'id': index, 'name': name, 'supercategory': 'shape'}
          for index, name in enumerate(shapes.SHAPE_COLOURS, start=1)]


def _annotation(annotation_id, image_id, box, category_id):
  """One COCO annotation from a [top, left, bottom, right] pixel box."""
  top, left, bottom, right = (float(value) for value in box)
  width, height = right - left, bottom - top
  return {
      'id': annotation_id,
      'image_id': image_id,
      'category_id': int(category_id),
      'bbox': [left, top, width, height],
      'area': width * height,
      'iscrowd': 0,
      'segmentation': [[left, top, right, top, right, bottom, left, bottom]],
  }


def build(seed, count, height=240, width=320, max_boxes=3):
  """Returns (instances dict, {file_name: uint8 image}) for `count` images.

  Image ids and annotation ids start at 1; file names are COCO-style
  (`000000000001.jpg`, ...).
  """
  instances = {'images': [], 'annotations': [], 'categories': categories()}
  pixels = {}
  examples = shapes.generate(seed, count, height=height, width=width,
                             max_boxes=max_boxes)
  for image_id, example in enumerate(examples, start=1):
    file_name = f'{image_id:012d}.jpg'
    instances['images'].append({'id': image_id, 'file_name': file_name,
                                'height': height, 'width': width})
    for box, class_id in zip(example.boxes, example.class_ids):
      instances['annotations'].append(_annotation(
          len(instances['annotations']) + 1, image_id, box, class_id))
    pixels[file_name] = example.image
  return instances, pixels


def _save_jpeg(path, image):
  """Saves a uint8 (height, width, 3) array as a JPEG atomically."""
  atomic_files.write_atomically(path, lambda temporary: Image.fromarray(
      np.asarray(image)).save(temporary, format='JPEG', quality=95))


def write(image_dir, annotations_file, seed, count, height=240, width=320,
          max_boxes=3):
  """Writes the JPEGs into image_dir and the instances JSON; returns the dict.

  Both are written through temporary files and renames, so an interrupted
  run never leaves a truncated image or JSON behind.
  """
  instances, pixels = build(seed, count, height=height, width=width,
                            max_boxes=max_boxes)
  os.makedirs(image_dir, exist_ok=True)
  for file_name, image in pixels.items():
    _save_jpeg(os.path.join(image_dir, file_name), image)
  atomic_files.write_text(annotations_file, json.dumps(instances))
  return instances
