"""COCO panoptic -> semantic TFRecords, read back by Model Garden's own decoder.

A tiny dataset in COCO's panoptic format is generated
(tests/coco_panoptic_files.py); the expected label maps are computed from the
generated segment ids with the class table below, written out by hand.
"""
import glob
import json
import os

import numpy as np
from official.vision.dataloaders import segmentation_input
import pytest
import tensorflow as tf

import coco_panoptic_files
import conftest
from gc_detection.data import coco_semantic

# 0: things; the stuff ids 7 < 9 < 12 become 1, 2, 3.
EXPECTED_CLASS = {1: 0, 3: 0, 7: 1, 9: 2, 12: 3}
EXPECTED_CLASSES_JSON = {'num_classes': 4, 'names': ['things', 'sky', 'wall', 'grass'],
                         'category_ids': [None, 7, 9, 12]}
MODULE = 'gc_detection.cli.prepare_coco_semantic'


def _expected_labels(ids, segments):
  expected = np.full(ids.shape, 255, np.uint8)
  for segment in segments:
    expected[ids == segment['id']] = EXPECTED_CLASS[segment['category_id']]
  return expected


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
  paths, generated = coco_panoptic_files.write_dataset(tmp_path)
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
  paths, _ = coco_panoptic_files.write_dataset(tmp_path)
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
  paths, _ = coco_panoptic_files.write_dataset(tmp_path)
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
  paths, generated = coco_panoptic_files.write_dataset(tmp_path)
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
  paths, generated = coco_panoptic_files.write_dataset(tmp_path)
  missing_png = paths['masks'] / f'{generated[1][0]["id"]:012d}.png'
  missing_png.unlink()
  output_dir = tmp_path / 'out'
  with pytest.raises(coco_semantic.PanopticFormatError, match=str(missing_png)):
    coco_semantic.write_split(str(paths['json']), str(paths['masks']),
                              str(paths['images']), str(output_dir), 'val', 3)
  # The shard before it is complete; no temporary file, no classes.json.
  assert os.listdir(output_dir) == ['val-00000-of-00003.tfrecord']
