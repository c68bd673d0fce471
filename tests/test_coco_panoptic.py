"""COCO panoptic -> Panoptic FPN TFRecords, read back by the task's decoder.

The tiny COCO-format dataset of tests/coco_panoptic_files.py; the expected
masks are computed here from the generated segment ids with the category
table below, written out by hand, and instance boxes from the segments'
pixels.
"""
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import coco_panoptic_files
import conftest
from gc_detection.data import coco_panoptic
from gc_detection.data import coco_semantic
from gc_detection.model_garden import panoptic_input

# Things by COCO id (1 person, 3 car) first, then stuff (7 sky, 9 wall, 12 grass).
EXPECTED_CATEGORY = {1: 1, 3: 2, 7: 3, 9: 4, 12: 5}
EXPECTED_CATEGORIES_JSON = {'num_thing_classes': 2, 'num_stuff_classes': 3,
                            'names': ['void', 'person', 'car', 'sky', 'wall', 'grass'],
                            'coco_category_ids': [None, 1, 3, 7, 9, 12]}
MODULE = 'gc_detection.cli.prepare_coco_panoptic'


def _expected(ids, segments):
  """category, instance (H, W) and [(class, crowd, mask)] of the things, painted order."""
  category = np.zeros(ids.shape, np.int64)
  instance = np.zeros(ids.shape, np.int64)
  things = []
  next_id = 1
  for segment in segments:
    mask = ids == segment['id']
    panoptic_id = EXPECTED_CATEGORY[segment['category_id']]
    is_thing = panoptic_id <= 2
    if is_thing and mask.any():
      things.append((panoptic_id, bool(segment['iscrowd']), mask))
    if segment['iscrowd'] or not mask.any():
      continue
    category[mask] = panoptic_id
    if is_thing:
      instance[mask] = next_id
      next_id += 1
  return category, instance, things


def test_the_shards_hold_masks_and_instances_the_task_decodes(tmp_path):
  paths, generated = coco_panoptic_files.write_dataset(tmp_path)
  output_dir = tmp_path / 'coco_panoptic'
  result = conftest.run_python(
      ['-m', MODULE, f'--panoptic_annotations_file={paths["json"]}',
       f'--panoptic_masks_dir={paths["masks"]}', f'--image_dir={paths["images"]}',
       f'--output_dir={output_dir}', '--split=val', '--num_shards=2'])
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'categories: 0 void, 1-2 things, 3-5 stuff' in result.stdout, result.stdout
  assert sorted(os.listdir(output_dir)) == [
      'categories.json', 'val-00000-of-00002.tfrecord', 'val-00001-of-00002.tfrecord']
  assert json.loads((output_dir / 'categories.json').read_text()) == EXPECTED_CATEGORIES_JSON

  decoder = panoptic_input.Decoder()
  records = list(tf.data.TFRecordDataset(sorted(glob.glob(str(output_dir / 'val-*')))))
  assert len(records) == len(generated)
  crowds_seen = 0
  for record, (info, ids, segments) in zip(records, generated):
    decoded = {key: value.numpy() for key, value in decoder.decode(record).items()}
    category, instance, things = _expected(ids, segments)
    # Segments painted later cover earlier ones: compare with the visible ids.
    np.testing.assert_array_equal(decoded['groundtruth_panoptic_category_mask'][..., 0],
                                  category, err_msg=info['file_name'])
    np.testing.assert_array_equal(decoded['groundtruth_panoptic_instance_mask'][..., 0],
                                  instance, err_msg=info['file_name'])
    assert int(decoded['source_id']) == info['id']
    assert decoded['image'].shape[:2] == ids.shape
    np.testing.assert_array_equal(decoded['groundtruth_classes'], [t[0] for t in things])
    np.testing.assert_array_equal(decoded['groundtruth_is_crowd'], [t[1] for t in things])
    crowds_seen += sum(t[1] for t in things)
    height, width = ids.shape
    for box, mask, (_, _, expected_mask) in zip(decoded['groundtruth_boxes'],
                                                decoded['groundtruth_instance_masks'],
                                                things):
      np.testing.assert_array_equal(mask > 0.5, expected_mask)
      rows, cols = np.nonzero(expected_mask)
      np.testing.assert_allclose(
          box * [height, width, height, width],
          [rows.min(), cols.min(), rows.max() + 1, cols.max() + 1], atol=1e-3)
  assert crowds_seen >= 1  # the case is not vacuous


def test_more_instances_than_uint8_ids_are_refused_naming_the_png():
  ids = np.arange(1, 301).reshape(15, 20)
  segments = [{'id': int(i), 'category_id': 1, 'iscrowd': 0} for i in range(1, 301)]
  with pytest.raises(coco_semantic.PanopticFormatError, match=r'x\.png: more than 255'):
    coco_panoptic.panoptic_masks(coco_panoptic_files.panoptic_rgb(ids), segments,
                                 {1: 1, 7: 2}, num_thing_classes=1, source='x.png')

