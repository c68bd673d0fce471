"""COCO panoptic -> semantic TFRecords, read back by Model Garden's own decoder.

A tiny dataset in COCO's panoptic format is generated here (JPEGs, panoptic
PNGs whose segment ids use all three channels, things, crowd things, stuff
with non-contiguous ids, void and unlisted pixels, categories not sorted by
id); the expected label maps are computed from the generated segment ids with
the class table below, written out by hand.
"""
import glob
import json
import os

import numpy as np
from official.vision.dataloaders import segmentation_input
from PIL import Image
import pytest
import tensorflow as tf

import conftest
from gc_detection.data import coco_semantic

CATEGORIES = [  # things and stuff mixed, not in id order
    {'id': 12, 'name': 'grass', 'isthing': 0, 'supercategory': 'plant'},
    {'id': 3, 'name': 'car', 'isthing': 1, 'supercategory': 'vehicle'},
    {'id': 7, 'name': 'sky', 'isthing': 0, 'supercategory': 'sky'},
    {'id': 1, 'name': 'person', 'isthing': 1, 'supercategory': 'person'},
    {'id': 9, 'name': 'wall', 'isthing': 0, 'supercategory': 'wall'},
]
# 0: things; the stuff ids 7 < 9 < 12 become 1, 2, 3.
EXPECTED_CLASS = {1: 0, 3: 0, 7: 1, 9: 2, 12: 3}
EXPECTED_CLASSES_JSON = {'num_classes': 4, 'names': ['things', 'sky', 'wall', 'grass'],
                         'category_ids': [None, 7, 9, 12]}
# (height, width) and the (category_id, iscrowd) of the segments, painted in order.
IMAGES = [
    ((40, 56), [(7, 0), (12, 0), (1, 0), (3, 1)]),
    ((56, 40), [(9, 0), (7, 0), (3, 0), (1, 1), (1, 0)]),
    ((40, 56), [(12, 0), (9, 0), (3, 0)]),
]
MODULE = 'gc_detection.cli.prepare_coco_semantic'


def _paint_segments(rng, shape, segment_categories):
  """(int (H, W) segment ids, segments_info): random boxes, void and unlisted ids."""
  height, width = shape
  ids = np.zeros(shape, np.int64)
  segments = []
  for category_id, iscrowd in segment_categories:
    segment_id = int(rng.integers(1, 256 ** 3))  # uses R, G and B
    top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
    bottom = top + rng.integers(height // 4, height - top + 1)
    right = left + rng.integers(width // 4, width - left + 1)
    ids[top:bottom, left:right] = segment_id
    segments.append({'id': segment_id, 'category_id': category_id, 'iscrowd': iscrowd,
                     'bbox': [int(left), int(top), int(right - left), int(bottom - top)],
                     'area': int((bottom - top) * (right - left))})
  ids[:3, :5] = 123457  # an id no segment lists
  ids[-4:, -6:] = 0  # void
  return ids, segments


def _panoptic_rgb(ids):
  """The uint8 (H, W, 3) panoptic PNG pixels of int (H, W) segment ids."""
  return np.stack([ids % 256, ids // 256 % 256, ids // 256 ** 2], axis=-1).astype(np.uint8)


def _expected_labels(ids, segments):
  expected = np.full(ids.shape, 255, np.uint8)
  for segment in segments:
    expected[ids == segment['id']] = EXPECTED_CLASS[segment['category_id']]
  return expected


def _write_dataset(root, images=IMAGES, seed=0):
  """Writes root/{val2017, panoptic_val2017, panoptic_val2017.json}.

  Returns (paths dict, [(image info, int (H, W) segment ids, segments_info)]).
  """
  rng = np.random.default_rng(seed)
  paths = {'images': root / 'val2017', 'masks': root / 'panoptic_val2017',
           'json': root / 'panoptic_val2017.json'}
  paths['images'].mkdir(parents=True)
  paths['masks'].mkdir()
  panoptic = {'images': [], 'annotations': [], 'categories': CATEGORIES}
  generated = []
  for image_id, (shape, segment_categories) in zip((139, 42, 785), images):
    info = {'id': image_id, 'file_name': f'{image_id:012d}.jpg',
            'height': shape[0], 'width': shape[1]}
    pixels = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    Image.fromarray(pixels).save(paths['images'] / info['file_name'], quality=90)
    ids, segments = _paint_segments(rng, shape, segment_categories)
    png_name = f'{image_id:012d}.png'
    Image.fromarray(_panoptic_rgb(ids)).save(paths['masks'] / png_name)
    panoptic['images'].append(info)
    panoptic['annotations'].append({'image_id': image_id, 'file_name': png_name,
                                    'segments_info': segments})
    generated.append((info, ids, segments))
  paths['json'].write_text(json.dumps(panoptic))
  return paths, generated


def _command(paths, output_dir, *extra):
  return ['-m', MODULE, f'--panoptic_annotations_file={paths["json"]}',
          f'--panoptic_masks_dir={paths["masks"]}', f'--image_dir={paths["images"]}',
          f'--output_dir={output_dir}', '--split=val', *extra]


def _records(pattern):
  """[(decoded dict of Model Garden's Decoder, tf.train.Example)] in shard order."""
  decoder = segmentation_input.Decoder()
  records = []
  for serialized in tf.data.TFRecordDataset(sorted(glob.glob(pattern))):
    records.append(({key: value.numpy() for key, value in decoder.decode(serialized).items()},
                    tf.train.Example.FromString(serialized.numpy())))
  return records


def _bytes_feature(example, key):
  return example.features.feature[key].bytes_list.value[0]


def test_the_shards_hold_what_model_gardens_decoder_reads(tmp_path):
  paths, generated = _write_dataset(tmp_path)
  output_dir = tmp_path / 'coco_semantic'
  result = conftest.run_python(_command(paths, output_dir, '--num_shards=2'))
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'num_classes: 4' in result.stdout, result.stdout
  assert 'val: 3/3 images' in result.stderr
  assert sorted(os.listdir(output_dir)) == [
      'classes.json', 'val-00000-of-00002.tfrecord', 'val-00001-of-00002.tfrecord']
  assert json.loads((output_dir / 'classes.json').read_text()) == EXPECTED_CLASSES_JSON

  records = _records(str(output_dir / 'val-*.tfrecord'))
  assert len(records) == len(generated)
  for (decoded, example), (info, ids, segments) in zip(records, generated):
    image_file = paths['images'] / info['file_name']
    assert decoded['image/encoded'] == image_file.read_bytes()
    assert (decoded['image/height'], decoded['image/width']) == ids.shape
    assert _bytes_feature(example, 'image/source_id') == str(info['id']).encode()
    assert _bytes_feature(example, 'image/filename') == info['file_name'].encode()
    assert _bytes_feature(example, 'image/format') == b'jpeg'
    assert _bytes_feature(example, 'image/segmentation/class/format') == b'png'
    # As segmentation_input.Parser decodes it.
    labels = tf.io.decode_image(decoded['image/segmentation/class/encoded'],
                                channels=1).numpy()
    expected = _expected_labels(ids, segments)
    np.testing.assert_array_equal(labels[..., 0], expected, err_msg=info['file_name'])
    assert {0, 255} <= set(np.unique(expected))  # the case is not vacuous


def test_a_missing_masks_dir_names_the_flag(tmp_path):
  paths, _ = _write_dataset(tmp_path)
  missing = tmp_path / 'no_such_masks'
  command = _command(paths, tmp_path / 'out')
  command[command.index(f'--panoptic_masks_dir={paths["masks"]}')] = (
      f'--panoptic_masks_dir={missing}')
  result = conftest.run_python(command)
  assert result.returncode == 2, result.stderr[-2000:]
  last_line = result.stderr.strip().splitlines()[-1]
  assert '--panoptic_masks_dir' in last_line and str(missing) in last_line, last_line
  assert not (tmp_path / 'out').exists()


def test_an_unknown_category_names_the_png_and_segment(tmp_path):
  paths, _ = _write_dataset(tmp_path)
  panoptic = json.loads(paths['json'].read_text())
  bad_segment = panoptic['annotations'][1]['segments_info'][2]
  bad_segment['category_id'] = 99
  paths['json'].write_text(json.dumps(panoptic))
  output_dir = tmp_path / 'out'
  result = conftest.run_python(_command(paths, output_dir))
  assert result.returncode == 1, result.stderr[-2000:]
  last_line = result.stderr.strip().splitlines()[-1]
  png_name = panoptic['annotations'][1]['file_name']
  assert png_name in last_line and str(bad_segment['id']) in last_line, last_line
  assert 'category_id 99' in last_line, last_line
  assert not output_dir.exists()  # checked before any shard is written


def test_max_images_fewer_shards_and_stale_shards(tmp_path):
  paths, generated = _write_dataset(tmp_path)
  output_dir = tmp_path / 'out'
  output_dir.mkdir()
  (output_dir / 'train-00004-of-00032.tfrecord').write_bytes(b'an earlier run')
  written = coco_semantic.write_split(
      str(paths['json']), str(paths['masks']), str(paths['images']), str(output_dir),
      'train', coco_semantic.DEFAULT_NUM_SHARDS['train'], max_images=2)
  assert written['num_images'] == 2
  assert sorted(os.listdir(output_dir)) == [
      'classes.json', 'train-00000-of-00002.tfrecord', 'train-00001-of-00002.tfrecord']
  records = _records(str(output_dir / 'train-*.tfrecord'))
  assert [record['image/encoded'] for record, _ in records] == [
      (paths['images'] / info['file_name']).read_bytes() for info, _, _ in generated[:2]]


def test_a_failing_image_leaves_no_partial_shard(tmp_path):
  paths, generated = _write_dataset(tmp_path)
  missing_png = paths['masks'] / f'{generated[1][0]["id"]:012d}.png'
  missing_png.unlink()
  output_dir = tmp_path / 'out'
  with pytest.raises(coco_semantic.PanopticFormatError, match=str(missing_png)):
    coco_semantic.write_split(str(paths['json']), str(paths['masks']),
                              str(paths['images']), str(output_dir), 'val', 3)
  # The shard before it is complete; no temporary file, no classes.json.
  assert os.listdir(output_dir) == ['val-00000-of-00003.tfrecord']
