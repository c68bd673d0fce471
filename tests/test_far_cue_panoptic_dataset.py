"""The panoptic far-cue strips: labels, records, and a cue beyond the stock model's reach.

References: the strip's own drawing (its pixels), the records decoded by
official.vision's Mask R-CNN decoder (through gc_detection's panoptic
decoder), and gradients of the stock Panoptic FPN's outputs with respect to
the cue band, which are exactly zero when the band is out of reach.
"""
import numpy as np
import pytest
import tensorflow as tf

from official.core import exp_factory
from official.vision.ops import preprocess_ops

from gc_detection.data import far_cue_panoptic
from gc_detection.data import far_cue_panoptic_dataset
from gc_detection.data import far_cue_scenes
from gc_detection.data import panoptic_records
from gc_detection.model_garden import panoptic_input
from gc_detection.model_garden import panoptic_model
from gc_detection.model_garden import registry  # pylint: disable=unused-import

SPEC = far_cue_panoptic.PANOPTIC_SPEC
CATEGORY = {name: index for index, name in enumerate(far_cue_panoptic.CATEGORY_NAMES)}


@pytest.fixture(scope='module')
def strips():
  return list(far_cue_panoptic.generate(3, 40))


def test_generation_is_deterministic_in_the_seed(strips):
  again = list(far_cue_panoptic.generate(3, 3))
  for first, second in zip(strips, again):
    np.testing.assert_array_equal(first.image, second.image)
    np.testing.assert_array_equal(first.category_mask, second.category_mask)


def test_disks_and_ground_are_named_by_the_scene_and_look_alike_in_every_scene(strips):
  scenes_seen = set()
  for strip in strips:
    thing = far_cue_panoptic.THING_NAMES[strip.scene]
    ground = far_cue_panoptic.GROUND_NAMES[strip.scene]
    disks = strip.instance_mask > 0
    assert (strip.category_mask[disks] == CATEGORY[thing]).all()
    assert set(np.unique(strip.category_mask[strip.category_mask <= 3])) <= {CATEGORY[thing]}
    assert (strip.image[disks] == far_cue_scenes.OBJECT_COLOUR).all()
    ground_pixels = strip.category_mask == CATEGORY[ground]
    assert ground_pixels.sum() == SPEC.ground_height * SPEC.disk_zone()
    assert np.abs(strip.image[ground_pixels].mean(0) - far_cue_panoptic.GROUND_COLOUR).max() < 3
    assert not (disks & ground_pixels).any()
    assert (strip.category_mask > 0).all()  # no void in the strips
    scenes_seen.add(strip.scene)
  assert scenes_seen == {0, 1, 2}


def test_every_disk_and_ground_pixel_is_min_cue_distance_from_the_band(strips):
  bands = [CATEGORY[name] for name in ('sky', 'table', 'street')]
  for strip in strips:
    band_columns = np.nonzero(np.isin(strip.category_mask, bands).any(axis=0))[0]
    far_columns = np.nonzero(((strip.instance_mask > 0)
                              | (strip.category_mask >= CATEGORY['cloud_bank'])).any(axis=0))[0]
    gap = (far_columns.min() - band_columns.max() if strip.cue_side == 'left'
           else band_columns.min() - far_columns.max())
    assert gap > SPEC.min_cue_distance


def test_records_decode_to_the_strip_s_masks_instances_and_image(tmp_path, strips):
  paths = far_cue_panoptic_dataset.write_dataset(str(tmp_path), num_train=2, num_val=3,
                                                 seed=3, show_progress=False)
  val = list(far_cue_panoptic.generate(4, 3))
  decoder = panoptic_input.Decoder()
  for record, strip in zip(tf.data.TFRecordDataset(paths['val']), val):
    decoded = decoder.decode(record)
    np.testing.assert_array_equal(decoded['image'].numpy(), strip.image)
    np.testing.assert_array_equal(
        decoded['groundtruth_panoptic_category_mask'][:, :, 0].numpy(), strip.category_mask)
    np.testing.assert_array_equal(
        decoded['groundtruth_panoptic_instance_mask'][:, :, 0].numpy(), strip.instance_mask)
    masks = decoded['groundtruth_instance_masks'].numpy() > 0.5
    ids = sorted(set(np.unique(strip.instance_mask)) - {0})
    assert len(masks) == len(ids)
    for mask, instance_id in zip(masks, ids):
      np.testing.assert_array_equal(mask, strip.instance_mask == instance_id)
      rows, cols = np.nonzero(mask)
      box = decoded['groundtruth_boxes'].numpy()[ids.index(instance_id)]
      np.testing.assert_allclose(box * np.array([SPEC.height, SPEC.width] * 2),
                                 [rows.min(), cols.min(), rows.max() + 1, cols.max() + 1],
                                 atol=1e-3)
    assert (decoded['groundtruth_classes'].numpy() == strip.scene + 1).all()
    assert int(decoded['source_id'].numpy()) >= 1


def test_instances_of_names_every_visible_instance_once():
  category = np.zeros((6, 8), np.uint8)
  instance = np.zeros((6, 8), np.uint8)
  category[0:2, 0:3], instance[0:2, 0:3] = 2, 5
  category[3:6, 4:8], instance[3:6, 4:8] = 1, 2
  category[5, 0:2] = 4  # stuff: not an instance
  boxes, classes, masks = panoptic_records.instances_of(category, instance, 3)
  np.testing.assert_array_equal(boxes, [[3, 4, 6, 8], [0, 0, 2, 3]])
  np.testing.assert_array_equal(classes, [1, 2])
  assert masks.shape == (2, 6, 8) and masks[1].sum() == 6


def _far_zone(strip_spec, cue_side):
  zone = strip_spec.disk_zone()
  return slice(strip_spec.width - zone, strip_spec.width) if cue_side == 'left' else slice(0, zone)


def _band_gradients(experiment, freeze_group_norm_statistics, monkeypatch):
  """{output: max |d output / d band pixels|} of a randomly initialised model."""
  if freeze_group_norm_statistics:
    # Keras' GroupNormalization takes its statistics from tf.nn.weighted_moments
    # (through tensorflow.compat.v2): held fixed, only the convolutions carry
    # the band's influence.
    moments = tf.compat.v2.nn.weighted_moments
    monkeypatch.setattr(tf.compat.v2.nn, 'weighted_moments',
                        lambda *args, **kwargs: tuple(
                            tf.stop_gradient(m) for m in moments(*args, **kwargs)))
  model_config = exp_factory.get_exp_config(experiment).task.model
  tf.keras.utils.set_random_seed(0)
  model = panoptic_model.build_panoptic_fpn(
      tf.keras.layers.InputSpec(shape=[None, SPEC.height, SPEC.width, 3]), model_config)
  strip = next(far_cue_panoptic.generate(0, 1))
  image = tf.Variable(preprocess_ops.normalize_image(tf.constant(strip.image))[None])
  zone = _far_zone(SPEC, strip.cue_side)
  near_band = zone.start if strip.cue_side == 'left' else zone.stop
  disk_box = tf.constant([[[20., near_band - 16., 36., near_band]]]
                         if strip.cue_side == 'right' else
                         [[[20., near_band, 36., near_band + 16.]]])
  zone_box = tf.constant([[[0., zone.start, SPEC.height, zone.stop]]])
  # training=False throughout: inference batch norm, whatever global learning
  # phase earlier code in this process left (the OD API's sets it).
  with tf.GradientTape(persistent=True) as tape:
    backbone_features = model.backbone(image, training=False)
    fpn = model.decoder(backbone_features, training=False)
    logits = model.segmentation_head(
        (backbone_features, {str(level): fpn[str(level)] for level in range(2, 6)}),
        training=False)
    logits = tf.image.resize(logits, [SPEC.height, SPEC.width])
    outputs = {'semantic logits': tf.reduce_sum(logits[:, :, zone] ** 2)}
    for name, box in (('disk box', disk_box), ('zone box', zone_box)):
      box_features = model.roi_aligner(fpn, box)
      classes, _ = model.detection_head[0](box_features, training=False)
      mask_features = model.mask_roi_aligner(fpn, box)
      outputs[f'{name} classes'] = tf.reduce_sum(classes ** 2)
      outputs[f'{name} masks'] = tf.reduce_sum(model.mask_head(
          [mask_features, tf.ones([1, 1], tf.int32)], training=False) ** 2)
  band = (slice(0, SPEC.cue_width) if strip.cue_side == 'left'
          else slice(SPEC.width - SPEC.cue_width, SPEC.width))
  return {name: float(np.abs(tape.gradient(output, image)[0, :, band]).max())
          for name, output in outputs.items()}


@pytest.mark.parametrize('experiment,reaches', [('panoptic_fpn_resnet50_far_cue', False),
                                                ('panoptic_fpn_resnet50_gc_far_cue', True)])
def test_the_cue_band_is_beyond_the_stock_model_s_convolutions(experiment, reaches,
                                                               monkeypatch):
  gradients = _band_gradients(experiment, True, monkeypatch)
  for name, gradient in gradients.items():
    assert (gradient > 0) == reaches, (name, gradients)


def test_only_the_semantic_head_s_group_norm_statistics_see_the_band_in_the_stock_model(
    monkeypatch):
  gradients = _band_gradients('panoptic_fpn_resnet50_far_cue', False, monkeypatch)
  assert gradients.pop('semantic logits') > 0
  assert not any(gradients.values()), gradients  # the detector's heads: BatchNorm
