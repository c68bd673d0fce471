"""The far-cue dataset: identical objects, a deciding cue beyond the C4 receptive field.

The checks read the pictures, not the generator's bookkeeping: a pixel is
background when every channel lies in the noise range, object when it has the
disk colour, cue otherwise.
"""
import json

import numpy as np
from object_detection.data_decoders import tf_example_decoder
from object_detection.core import standard_fields as fields
from pycocotools.coco import COCO
import pytest
import tensorflow as tf

import gc_detection
from gc_detection.data import far_cue_scenes
from gc_detection.data import far_cue_dataset

# ResNet-50 up to conv4_block6, recomputed here: (kernel, stride) of every
# layer that widens the receptive field, in order.
_RESNET50_C4_LAYERS = ([(7, 2), (3, 2)] + [(3, 1)] * 3 + [(1, 2), (3, 1)] + [(3, 1)] * 3
                       + [(1, 2), (3, 1)] + [(3, 1)] * 5)


def _receptive_field(layers):
  field, jump = 1, 1
  for kernel, stride in layers:
    field += (kernel - 1) * jump
    jump *= stride
  return field, jump


def test_the_receptive_field_constant_is_resnet50_c4():
  assert _receptive_field(_RESNET50_C4_LAYERS) == (
      far_cue_scenes.C4_RECEPTIVE_FIELD, far_cue_scenes.C4_STRIDE)


def _pixel_kinds(image):
  """(object mask, cue mask) of a uint8 (H, W, 3) scene."""
  low, high = 90, 150  # the generator's grey noise range, every channel
  is_object = np.all(image == far_cue_scenes.OBJECT_COLOUR, axis=-1)
  background = np.all((image >= low) & (image < high), axis=-1)
  return is_object, ~background & ~is_object


@pytest.fixture(scope='module')
def scenes():
  return list(far_cue_scenes.generate(seed=11, count=120))


def test_every_class_and_cue_kind_occurs(scenes):
  pairs = {(scene.example.class_names[0], scene.cue_kind) for scene in scenes}
  assert pairs == {(name, kind) for name in far_cue_scenes.CLASSES
                   for kind in far_cue_scenes.CUE_KINDS}
  assert {scene.cue_edge for scene in scenes} == set(far_cue_scenes.EDGES)


def test_objects_look_the_same_in_every_class(scenes):
  sizes = {name: [] for name in far_cue_scenes.CLASSES}
  for scene in scenes:
    is_object, _ = _pixel_kinds(scene.example.image)
    for box, name in zip(scene.example.boxes.astype(int), scene.example.class_names):
      inside = np.zeros_like(is_object)
      inside[box[0]:box[2], box[1]:box[3]] = True
      # The disk fills its box's inscribed circle and nothing outside the box.
      disk = is_object & inside
      height = box[2] - box[0]
      assert disk.sum() == pytest.approx(np.pi * (height / 2) ** 2, rel=0.15)
      sizes[name].append(height)
  for name, heights in sizes.items():
    assert min(heights) >= 2 * 10 + 1 and max(heights) <= 2 * 16 + 1, name
  # Same size distribution for every class (the class is not in the object).
  medians = [np.median(heights) for heights in sizes.values()]
  assert max(medians) - min(medians) <= 4


def test_no_cue_pixel_is_inside_the_receptive_field_of_the_box_features(scenes):
  reach = far_cue_scenes.C4_STRIDE + far_cue_scenes.C4_RECEPTIVE_FIELD // 2
  for scene in scenes:
    is_object, is_cue = _pixel_kinds(scene.example.image)
    assert is_cue.sum() > 50, scene.example.filename  # the cue is there
    assert is_object.sum() == sum(
        np.sum(is_object[b[0]:b[2], b[1]:b[3]]) for b in scene.example.boxes.astype(int))
    cue_rows, cue_cols = np.nonzero(is_cue)
    for top, left, bottom, right in scene.example.boxes:
      seen = ((cue_rows > top - reach) & (cue_rows < bottom + reach) &
              (cue_cols > left - reach) & (cue_cols < right + reach))
      assert not seen.any(), (scene.example.filename, scene.cue_kind, scene.cue_edge)


def test_the_cue_tells_the_class(scenes):
  """Mean cue colour per (kind, class) differs between classes by a wide margin."""
  colours = {}
  for scene in scenes:
    _, is_cue = _pixel_kinds(scene.example.image)
    key = (scene.cue_kind, scene.example.class_names[0])
    colours.setdefault(key, []).append(scene.example.image[is_cue].mean(axis=0))
  for kind in far_cue_scenes.CUE_KINDS:
    means = [np.mean(colours[(kind, name)], axis=0) for name in far_cue_scenes.CLASSES]
    for i in range(len(means)):
      for j in range(i + 1, len(means)):
        assert np.abs(means[i] - means[j]).max() > 40, kind


def test_deterministic_in_the_seed():
  first = [s.example.image for s in far_cue_scenes.generate(seed=3, count=3)]
  again = [s.example.image for s in far_cue_scenes.generate(seed=3, count=3)]
  other = [s.example.image for s in far_cue_scenes.generate(seed=4, count=3)]
  assert all(np.array_equal(a, b) for a, b in zip(first, again))
  assert not any(np.array_equal(a, b) for a, b in zip(first, other))


@pytest.mark.parametrize('changes,field', [
    ({'size': 128}, 'size'), ({'cue_kinds': ('smell',)}, 'cue_kinds'),
    ({'min_radius': 20, 'max_radius': 10}, 'min_radius'), ({'max_objects': 0}, 'max_objects')])
def test_impossible_specs_name_the_field(changes, field):
  with pytest.raises(ValueError, match=field):
    far_cue_scenes.SceneSpec(**changes).check()


def test_written_files_agree_with_each_other(tmp_path):
  paths = far_cue_dataset.write_dataset(str(tmp_path), num_train=6, num_val=5,
                                             seed=2, show_progress=False)
  truth = COCO(paths['val_coco'])
  assert sorted(truth.getCatIds()) == [1, 2, 3]
  gc_detection.register()  # the tf-slim shim the stock decoder needs
  decoder = tf_example_decoder.TfExampleDecoder()  # the stock trainer's decoder
  records = list(tf.data.TFRecordDataset(paths['val']))
  assert len(records) == 5 == len(truth.getImgIds())
  for image_id, record in zip(sorted(truth.getImgIds()), records):
    decoded = decoder.decode(record)
    entry = truth.loadImgs(image_id)[0]
    assert decoded[fields.InputDataFields.filename].numpy().decode() == entry['file_name']
    annotations = truth.loadAnns(truth.getAnnIds(imgIds=image_id))
    boxes = decoded[fields.InputDataFields.groundtruth_boxes].numpy() * 256
    expected = [[a['bbox'][1], a['bbox'][0], a['bbox'][1] + a['bbox'][3],
                 a['bbox'][0] + a['bbox'][2]] for a in annotations]
    np.testing.assert_allclose(boxes, expected, atol=1e-3)
    assert list(decoded[fields.InputDataFields.groundtruth_classes].numpy()) == [
        a['category_id'] for a in annotations]
    image = decoded[fields.InputDataFields.image].numpy()
    with open(f'{paths["val_images"]}/{entry["file_name"]}', 'rb') as png:
      assert np.array_equal(tf.io.decode_png(png.read()).numpy(), image)
  assert len(list(tf.data.TFRecordDataset(paths['train']))) == 6
  with open(paths['label_map']) as label_map:
    assert [line.split("'")[1] for line in label_map if 'name' in line] == list(
        far_cue_scenes.CLASSES)
  summary = json.load(open(paths['summary']))
  assert summary['num_val'] == 5 and summary['min_cue_distance'] == 146
