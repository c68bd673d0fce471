"""Panoptic FPN's inference fusion against hand-made cases and a float64 reference.

The reference below is written from the algorithm's statement (Kirillov et
al., Panoptic FPN, Sec. 3; gc_detection.model_garden.panoptic_fusion's
docstring): it pastes each box-relative mask by explicit bilinear sampling in
float64 and places instances and stuff with NumPy loops, sharing no code
with the layer.
"""
import numpy as np
import pytest
import tensorflow as tf

from official.vision.ops import mask_ops

from gc_detection.model_garden import panoptic_fusion

THINGS = 3


def _reference_paste(mask, box, height, width):
  """float64 (height, width): mask pixel k tiles [y1 + k h / M, y1 + (k + 1) h / M);
  each canvas pixel centre reads it bilinearly, zero beyond its border."""
  size = mask.shape[0]
  padded = np.pad(mask.astype(np.float64), 1)
  y1, x1, y2, x2 = box
  out = np.zeros((height, width))
  for j in range(height):
    v = (j + 0.5 - y1) * size / max(y2 - y1, 1e-3) - 0.5 + 1
    if not 0 <= v <= size + 1:
      continue
    for i in range(width):
      u = (i + 0.5 - x1) * size / max(x2 - x1, 1e-3) - 0.5 + 1
      if not 0 <= u <= size + 1:
        continue
      v0, u0 = int(np.floor(v)), int(np.floor(u))
      v1, u1 = min(v0 + 1, size + 1), min(u0 + 1, size + 1)
      dv, du = v - v0, u - u0
      out[j, i] = ((1 - dv) * (1 - du) * padded[v0, u0] + (1 - dv) * du * padded[v0, u1]
                   + dv * (1 - du) * padded[v1, u0] + dv * du * padded[v1, u1])
  return out


def _reference_fusion(boxes, classes, scores, masks, num_detections, semantic, valid,
                      score_threshold=0.5, overlap_threshold=0.5, stuff_area=4,
                      binarize=0.5):
  height, width = semantic.shape
  inside = np.zeros((height, width), bool)
  inside[:int(valid[0]), :int(valid[1])] = True
  category = np.zeros((height, width), np.int64)
  instance = np.zeros((height, width), np.int64)
  taken = np.zeros((height, width), bool)
  next_id = 1
  for index in sorted(range(len(scores)), key=lambda n: -scores[n]):
    if index >= num_detections or scores[index] < score_threshold:
      continue
    mask = (_reference_paste(masks[index], boxes[index], height, width) >= binarize) & inside
    area = mask.sum()
    if area == 0 or (mask & taken).sum() > overlap_threshold * area:
      continue
    claimed = mask & ~taken
    category[claimed] = classes[index]
    instance[claimed] = next_id
    taken |= claimed
    next_id += 1
  for stuff in range(1, semantic.max() + 1):
    region = (semantic == stuff) & ~taken & inside
    if region.sum() >= stuff_area:
      category[region] = THINGS + stuff
  return category, instance


def _fuse(boxes, classes, scores, masks, num_detections, logits, valid, **thresholds):
  layer = panoptic_fusion.PanopticFusion(num_thing_classes=THINGS, **thresholds)
  detections = {'detection_boxes': np.asarray(boxes, np.float32)[None],
                'detection_classes': np.asarray(classes, np.int32)[None],
                'detection_scores': np.asarray(scores, np.float32)[None],
                'detection_masks': np.asarray(masks, np.float32)[None],
                'num_detections': np.asarray([num_detections], np.int32)}
  outputs = layer(detections, tf.constant(logits[None], tf.float32),
                  tf.constant([valid], tf.float32), canvas_size=logits.shape[:2])
  return outputs['category_mask'][0].numpy(), outputs['instance_mask'][0].numpy()


def _one_hot_logits(semantic, num_classes):
  return 10.0 * np.eye(num_classes)[semantic]


def _full(size=7):
  return np.ones((size, size))


def test_a_pasted_mask_agrees_with_official_vision_s_paste():
  rng = np.random.default_rng(0)
  for _ in range(5):
    smooth = tf.image.resize(rng.random((4, 4, 1)), [28, 28]).numpy()[:, :, 0]
    y1, x1 = rng.uniform(5, 30, size=2)
    box = np.array([y1, x1, y1 + rng.uniform(20, 40), x1 + rng.uniform(20, 40)])
    ours = panoptic_fusion.paste_mask(smooth, box, 80, 90).numpy() >= 0.5
    stock = mask_ops.paste_instance_masks(
        smooth[None], np.array([[box[1], box[0], box[3] - box[1], box[2] - box[0]]]),
        80, 90)[0] > 0
    agreement = (ours & stock).sum() / max((ours | stock).sum(), 1)
    assert agreement > 0.85, agreement
    np.testing.assert_allclose(panoptic_fusion.paste_mask(smooth, box, 80, 90).numpy(),
                               _reference_paste(smooth, box, 80, 90), atol=1e-4)


def test_instances_take_their_pixels_in_score_order_and_overlaps_are_dropped():
  height, width = 20, 24
  semantic = np.zeros((height, width), np.int64)
  # Boxes [y1, x1, y2, x2] cover pixels y1..y2-1, x1..x2-1 with all-ones masks.
  boxes = [[2, 2, 11, 11],     # A, second score: keeps the pixels B left
           [0, 0, 5, 5],       # B, best score: placed whole
           [2, 2, 9, 9],       # C: inside A, 100% overlap -> dropped
           [13, 13, 18, 18]]   # D: score below the threshold -> dropped
  scores = [0.8, 0.9, 0.7, 0.4]
  category, instance = _fuse(boxes, [1, 2, 3, 1], scores, [_full()] * 4, 4,
                             _one_hot_logits(semantic, 2), (height, width))
  expected_category = np.zeros((height, width), np.int64)
  expected_instance = np.zeros((height, width), np.int64)
  expected_category[2:11, 2:11], expected_instance[2:11, 2:11] = 1, 2
  expected_category[0:5, 0:5], expected_instance[0:5, 0:5] = 2, 1
  np.testing.assert_array_equal(category, expected_category)
  np.testing.assert_array_equal(instance, expected_instance)


def test_the_overlap_threshold_is_a_fraction_of_the_instance_s_own_area():
  height, width = 12, 24
  semantic = np.zeros((height, width), np.int64)
  first = [0, 0, 10, 10]                  # 10 x 10 px
  under_half = [0, 6, 10, 16]             # 4 of its 10 columns covered: 40%
  over_half = [0, 4, 10, 14]              # 6 of 10 columns covered: 60%
  for second, placed in ((under_half, True), (over_half, False)):
    category, instance = _fuse([first, second], [1, 2], [0.9, 0.8], [_full()] * 2, 2,
                               _one_hot_logits(semantic, 2), (height, width))
    assert (instance == 2).any() == placed
    if placed:
      assert (category[instance == 2] == 2).all()
      assert (instance == 2).sum() == 10 * 6


def test_detections_beyond_num_detections_are_ignored():
  semantic = np.zeros((10, 10), np.int64)
  category, _ = _fuse([[0, 0, 5, 5], [5, 5, 10, 10]], [1, 2], [0.6, 0.99],
                      [_full()] * 2, 1, _one_hot_logits(semantic, 2), (10, 10))
  assert (category == 1).sum() == 25 and not (category == 2).any()


def test_stuff_below_the_area_threshold_leftover_things_and_padding_are_void():
  height, width = 16, 16
  semantic = np.zeros((height, width), np.int64)  # 0: "thing" pixels no instance claims
  semantic[:, :4] = 1          # stuff 1, its last 4 rows beyond the valid height
  semantic[0:2, 6:8] = 2       # 4 px of stuff 2
  category, instance = _fuse([], [], [], np.zeros((0, 7, 7)), 0,
                             _one_hot_logits(semantic, 3), (12, 12),
                             stuff_area_threshold=5)
  expected = np.zeros((height, width), np.int64)
  expected[:12, :4] = THINGS + 1
  np.testing.assert_array_equal(category, expected)
  assert not instance.any()


def test_stuff_fills_what_instances_leave_and_its_area_counts_only_free_pixels():
  height, width = 12, 12
  semantic = np.full((height, width), 1)
  semantic[:, 6:] = 2
  # The instance covers all but 6 px of stuff 2's 72.
  category, instance = _fuse([[0, 6, 11, 12]], [3], [0.9], [_full()], 1,
                             _one_hot_logits(semantic, 3), (height, width),
                             stuff_area_threshold=7)
  assert (category[:, :6] == THINGS + 1).all()
  assert (category[0:11, 6:12] == 3).all() and (instance[0:11, 6:12] == 1).all()
  assert (category[11, 6:12] == 0).all()  # 6 free px of stuff 2 < 7: void


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_random_scenes_match_the_float64_reference(seed):
  rng = np.random.default_rng(seed)
  height, width, count = 40, 48, 8
  corners = rng.uniform(0, [height - 8, width - 8], size=(count, 2))
  sizes = rng.uniform(6, 20, size=(count, 2))
  boxes = np.concatenate([corners, corners + sizes], axis=1)
  masks = np.where(rng.random((count, 14, 14)) < 0.6, 0.9, 0.1)
  scores = rng.uniform(0.3, 1.0, size=count)
  classes = rng.integers(1, THINGS + 1, size=count)
  semantic = np.repeat(np.repeat(rng.integers(0, 4, size=(5, 6)), 8, 0), 8, 1)
  valid = (36, 44)
  category, instance = _fuse(boxes, classes, scores, masks, 7,
                             _one_hot_logits(semantic, 4), valid,
                             stuff_area_threshold=20)
  expected_category, expected_instance = _reference_fusion(
      boxes, classes, scores, masks, 7, semantic, valid, stuff_area=20)
  assert (category != expected_category).mean() <= 1e-3
  assert (instance != expected_instance).mean() <= 1e-3
  assert len(np.unique(expected_instance)) > 2  # the scene has overlapping instances


def test_the_layer_runs_batched_inside_a_tf_function():
  semantic = np.zeros((2, 16, 16), np.int64)
  semantic[1] = 1
  layer = panoptic_fusion.PanopticFusion(num_thing_classes=THINGS, stuff_area_threshold=1)
  detections = {'detection_boxes': tf.constant([[[0, 0, 5, 5]], [[8, 8, 12, 12]]],
                                               tf.float32),
                'detection_classes': tf.constant([[1], [2]]),
                'detection_scores': tf.constant([[0.9], [0.9]]),
                'detection_masks': tf.ones([2, 1, 7, 7]),
                'num_detections': tf.constant([1, 0])}
  fused = tf.function(lambda: layer(detections, tf.constant(_one_hot_logits(semantic, 2)),
                                    tf.constant([[16., 16.], [16., 16.]]),
                                    canvas_size=(16, 16)))()
  category = fused['category_mask'].numpy()
  assert (category[0, 0:5, 0:5] == 1).all() and (category[0] == 1).sum() == 25
  assert (category[1] == THINGS + 1).all()
