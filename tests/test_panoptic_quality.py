"""The panoptic scores the task reports, against an independent computation.

The task reports PQ, SQ, RQ (all, things, stuff) from official.vision's
PanopticQualityEvaluator; the reference is tests/panoptic_reference.py,
written from the definition, plus scores worked out by hand.
"""
import numpy as np
import pytest
import tensorflow as tf

from official.vision.evaluation import panoptic_quality_evaluator

from gc_detection.model_garden import panoptic_task
import panoptic_reference

NUM_CATEGORIES = 6          # 0 void, 1-3 things, 4-5 stuff
IS_THING = np.array([False, True, True, True, False, False])


def _evaluator_scores(pairs, padded=(24, 24)):
  evaluator = panoptic_quality_evaluator.PanopticQualityEvaluator(
      num_categories=NUM_CATEGORIES, ignored_label=0,
      max_instances_per_category=panoptic_task.MAX_INSTANCES_PER_CATEGORY,
      offset=NUM_CATEGORIES * panoptic_task.MAX_INSTANCES_PER_CATEGORY,
      is_thing=IS_THING, rescale_predictions=True)
  for (gt_category, gt_instance), (pred_category, pred_instance) in pairs:
    height, width = gt_category.shape
    info = tf.constant([[[height, width], [height, width], [1, 1], [0, 0]]], tf.float32)

    def padded_batch(mask):  # as the task hands them over: tensors
      out = np.zeros((1,) + padded, np.int32)
      out[0, :height, :width] = mask
      return tf.constant(out)

    evaluator.update_state(
        {'category_mask': padded_batch(gt_category),
         'instance_mask': padded_batch(gt_instance), 'image_info': info},
        {'category_mask': padded_batch(pred_category),
         'instance_mask': padded_batch(pred_instance)})
  results = evaluator.result()
  return {name: results[key] for name, key in panoptic_task.PANOPTIC_SCORES.items()}


def _handmade():
  """One image: a perfect thing, a half-found thing, a missed thing, stuff, void."""
  truth_category = np.zeros((20, 20), np.int64)
  truth_instance = np.zeros((20, 20), np.int64)
  truth_category[:, 10:] = 4                              # stuff 4, 200 px
  truth_category[0:4, 0:4], truth_instance[0:4, 0:4] = 1, 1      # thing 1: found exactly
  truth_category[6:10, 0:4], truth_instance[6:10, 0:4] = 1, 2    # thing 1: missed
  truth_category[12:16, 0:5], truth_instance[12:16, 0:5] = 2, 1  # thing 2: 20 px
  # rows 16-20, cols 0-10 stay void
  prediction_category = np.zeros((20, 20), np.int64)
  prediction_instance = np.zeros((20, 20), np.int64)
  prediction_category[:, 10:] = 4
  prediction_category[:, 12:14] = 5                       # a false stuff 5 strip, 40 px
  prediction_category[0:4, 0:4], prediction_instance[0:4, 0:4] = 1, 1
  prediction_category[12:16, 0:3], prediction_instance[12:16, 0:3] = 2, 1  # IoU 12/20
  prediction_category[16:20, 0:8], prediction_instance[16:20, 0:8] = 3, 1  # all void
  return [((truth_category, truth_instance), (prediction_category, prediction_instance))]


def test_the_handmade_image_scores_what_the_definition_gives_by_hand():
  scores = _evaluator_scores(_handmade())
  # thing 1: TP IoU 1, FN 1 -> SQ 1, RQ 1/1.5; thing 2: TP IoU 0.6 -> PQ 0.6;
  # thing 3: only on void -> no FP, not present; stuff 4: IoU 160/200 -> PQ 0.8;
  # stuff 5: FP -> PQ 0.
  expected_pq = {1: 1 / 1.5, 2: 0.6, 4: 0.8, 5: 0.0}
  assert scores['PQ'] == pytest.approx(np.mean(list(expected_pq.values())))
  assert scores['PQ_th'] == pytest.approx((expected_pq[1] + expected_pq[2]) / 2)
  assert scores['PQ_st'] == pytest.approx((expected_pq[4] + expected_pq[5]) / 2)
  assert scores['SQ_th'] == pytest.approx((1.0 + 0.6) / 2)
  assert scores['RQ_st'] == pytest.approx((1.0 + 0.0) / 2)


@pytest.mark.parametrize('seed', range(4))
def test_random_segmentations_match_the_reference(seed):
  rng = np.random.default_rng(seed)
  pairs = []
  for _ in range(3):
    truth = _random_panoptic(rng)
    prediction = [mask.copy() for mask in truth]
    # Perturb: shift some segments, relabel some, add noise blocks.
    for _ in range(6):
      y, x = rng.integers(0, 20, size=2)
      prediction[0][y:y + 5, x:x + 5] = rng.integers(0, NUM_CATEGORIES)
      prediction[1][y:y + 5, x:x + 5] = rng.integers(0, 3)
    prediction[1][~IS_THING[prediction[0]]] = 0
    pairs.append((tuple(truth), tuple(prediction)))
  expected = panoptic_reference.scores(pairs, IS_THING)
  scores = _evaluator_scores(pairs)
  for name, value in expected.items():
    assert scores[name] == pytest.approx(value, abs=1e-6), name


def _random_panoptic(rng, size=24):
  category = np.repeat(np.repeat(rng.integers(0, NUM_CATEGORIES, size=(4, 4)), 6, 0), 6, 1)
  instance = np.repeat(np.repeat(rng.integers(1, 3, size=(4, 4)), 6, 0), 6, 1)
  instance[~IS_THING[category]] = 0
  return [category, instance]
