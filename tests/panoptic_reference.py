"""Panoptic quality from its definition: the independent reference of the tests.

Kirillov et al., Panoptic Segmentation, 2019, Sec. 4.1, with COCO's void
rules: segments are (category, instance) regions of non-void category; a
predicted and a ground-truth segment of one category match when IoU > 0.5,
the predicted segment's void pixels left out of the union; an unmatched
prediction more than half void is not a false positive; per category
PQ = sum IoU / (TP + FP/2 + FN/2) = SQ x RQ, averaged over the categories that
appear (TP + FP + FN > 0). Loops over segment pairs with boolean masks,
unlike official.vision's id arithmetic.
"""
import numpy as np


def _segments(category, instance):
  return {(int(c), int(i)): (category == c) & (instance == i)
          for c, i in set(zip(category.ravel(), instance.ravel())) if c != 0}


def scores(pairs, is_thing):
  """{PQ, SQ, RQ}{, _th, _st} of [((gt category, gt instance), (pred category,
  pred instance))] int (H, W) mask pairs; is_thing: bool per category."""
  num_categories = len(is_thing)
  is_thing = np.asarray(is_thing, bool)
  iou_sum = np.zeros(num_categories)
  tp, fp, fn = np.zeros(num_categories), np.zeros(num_categories), np.zeros(num_categories)
  for (gt_category, gt_instance), (pred_category, pred_instance) in pairs:
    void = gt_category == 0
    truths = _segments(gt_category, gt_instance)
    predictions = _segments(pred_category, pred_instance)
    matched_truths, matched_predictions = set(), set()
    for (category, t_id), truth in truths.items():
      for (p_category, p_id), prediction in predictions.items():
        if p_category != category:
          continue
        intersection = (truth & prediction).sum()
        union = (truth | prediction).sum() - (prediction & void).sum()
        if intersection / union > 0.5:
          tp[category] += 1
          iou_sum[category] += intersection / union
          matched_truths.add((category, t_id))
          matched_predictions.add((p_category, p_id))
    for key in truths:
      if key not in matched_truths:
        fn[key[0]] += 1
    for key, prediction in predictions.items():
      if key not in matched_predictions and (prediction & void).sum() <= 0.5 * prediction.sum():
        fp[key[0]] += 1
  present = (tp + fp + fn) > 0
  present[0] = False
  with np.errstate(invalid='ignore', divide='ignore'):
    sq = np.where(tp > 0, iou_sum / np.maximum(tp, 1), 0.0)
    rq = np.where(present, tp / np.maximum(tp + fp / 2 + fn / 2, 1e-12), 0.0)
  pq = sq * rq
  results = {}
  for suffix, subset in (('', present), ('_th', present & is_thing),
                         ('_st', present & ~is_thing)):
    for name, values in (('PQ', pq), ('SQ', sq), ('RQ', rq)):
      results[name + suffix] = values[subset].mean() if subset.any() else 0.0
  return results
