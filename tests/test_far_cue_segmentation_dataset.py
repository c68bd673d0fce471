"""The far-cue segmentation strips: geometry, determinism, and Model Garden reading them.

The distance check measures, from the label maps alone, the gap between every
disk pixel and every band pixel (an independent reading of what the generator
promises); the records are read back with official.vision's own decoder.
"""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from official.vision.dataloaders import segmentation_input

from gc_detection.data import far_cue_segmentation_dataset
from gc_detection.data import far_cue_strips
from conftest import run_python

DISK_CLASSES = {4: 1, 5: 2, 6: 3}   # disk class -> the band class of its scene


def _columns(labels, classes):
  return np.nonzero(np.isin(labels, list(classes)).any(axis=0))[0]


def test_every_disk_is_beyond_half_the_receptive_field_from_its_band():
  spec = far_cue_strips.StripSpec()
  assert 2 * spec.min_cue_distance > far_cue_strips.SEGMENTATION_RECEPTIVE_FIELD
  sides, scenes = set(), set()
  for strip in far_cue_strips.generate(seed=3, count=60, spec=spec):
    assert strip.image.shape == (spec.height, spec.width, 3)
    disk_classes = set(np.unique(strip.labels)) & set(DISK_CLASSES)
    assert len(disk_classes) == 1, 'one scene per strip'
    disk_class = disk_classes.pop()
    band_columns = _columns(strip.labels, [DISK_CLASSES[disk_class]])
    disk_columns = _columns(strip.labels, [disk_class])
    assert len(band_columns) == spec.cue_width
    gap = min(abs(int(d) - int(b)) for d in disk_columns for b in band_columns)
    assert gap > spec.min_cue_distance
    # The disks look alike in every class: one colour wherever they are.
    disk = strip.labels == disk_class
    assert np.all(strip.image[disk] == far_cue_strips.far_cue_scenes.OBJECT_COLOUR)
    sides.add(strip.cue_side)
    scenes.add(disk_class)
  assert sides == {'left', 'right'} and scenes == set(DISK_CLASSES)


def test_generation_is_deterministic_in_the_seed():
  first = list(far_cue_strips.generate(5, 3))
  again = list(far_cue_strips.generate(5, 3))
  other = list(far_cue_strips.generate(6, 3))
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.labels, b.labels)
  assert any(not np.array_equal(a.image, c.image) for a, c in zip(first, other))


def test_a_strip_too_narrow_for_the_cue_distance_is_named():
  with pytest.raises(ValueError, match='width: 300 px leaves'):
    far_cue_strips.StripSpec(width=300).check()


def test_model_garden_reads_the_written_records(tmp_path):
  paths = far_cue_segmentation_dataset.write_dataset(str(tmp_path), 3, 2, seed=4,
                                                     show_progress=False)
  expected = list(far_cue_strips.generate(4, 3, prefix='train'))
  decoder = segmentation_input.Decoder()
  records = list(tf.data.TFRecordDataset(paths['train']))
  assert len(records) == 3
  for record, strip in zip(records, expected):
    decoded = decoder.decode(record)
    image = tf.io.decode_image(decoded['image/encoded'], channels=3).numpy()
    labels = tf.io.decode_image(decoded['image/segmentation/class/encoded'],
                                channels=1).numpy()[..., 0]
    np.testing.assert_array_equal(image, strip.image)
    np.testing.assert_array_equal(labels, strip.labels)
    assert int(decoded['image/height']) == strip.image.shape[0]
  summary = json.load(open(paths['summary']))
  assert summary['num_classes'] == len(far_cue_strips.CLASS_NAMES) == 7
  assert sorted(os.listdir(paths['val_images'])) == ['val_00000.png', 'val_00001.png']


def test_the_command_names_a_bad_flag(tmp_path):
  result = run_python(['-m', 'gc_detection.cli.make_far_cue_segmentation_dataset',
                       f'--output_dir={tmp_path}', '--width=300'])
  assert result.returncode == 2
  assert 'make_far_cue_segmentation_dataset: error: --width: 300 px leaves' in result.stderr
  assert not os.listdir(tmp_path)
