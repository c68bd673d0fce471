"""The paper's four segmentation metrics against a NumPy float64 count of pixels.

The reference counts pixels class by class from the label maps (no confusion
matrix), on handmade maps with an ignored region, a class absent from the
ground truth but predicted, and a class never predicted.
"""
import numpy as np
import pytest
import tensorflow as tf

from gc_detection.model_garden import segmentation_scores

NUM_CLASSES = 5
IGNORE = 255


def _reference(truth, prediction):
  """mIoU, fwIoU, mACC, pACC by counting pixels (classes without ground truth left out)."""
  valid = truth != IGNORE
  truth, prediction = truth[valid], prediction[valid]
  ious, accuracies, frequencies = [], [], []
  for c in range(NUM_CLASSES):
    in_truth, in_prediction = truth == c, prediction == c
    if not in_truth.any():
      continue
    both = np.sum(in_truth & in_prediction, dtype=np.float64)
    ious.append(both / np.sum(in_truth | in_prediction, dtype=np.float64))
    accuracies.append(both / np.sum(in_truth, dtype=np.float64))
    frequencies.append(np.sum(in_truth, dtype=np.float64) / truth.size)
  return {'mIoU': np.mean(ious), 'fwIoU': np.dot(frequencies, ious),
          'mACC': np.mean(accuracies), 'pACC': np.mean(truth == prediction)}


def _handmade():
  truth = np.zeros((2, 6, 8), np.int64)
  truth[0, :, 4:] = 1
  truth[0, 4:, :] = 2
  truth[1, :3, :] = 3
  truth[1, 3:, 6:] = IGNORE
  prediction = np.zeros((2, 6, 8), np.int64)
  prediction[0, :, 3:] = 1          # class 1 grows into class 0
  prediction[0, 5:, :] = 2          # class 2 shrinks
  prediction[1, :2, :] = 3
  prediction[1, 2:4, :] = 4         # class 4: predicted, never in the truth
  prediction[1, 3:, 6:] = 1         # under the ignored region: must not count
  return truth, prediction


def _update(metric, truth, prediction):
  logits = tf.one_hot(prediction, NUM_CLASSES) * 10.0
  masks = tf.constant(truth[..., None])
  metric.update_state({'masks': masks, 'valid_masks': masks != IGNORE,
                       'image_info': tf.zeros([truth.shape[0], 4, 2])}, logits)


def test_the_four_metrics_match_a_pixel_count():
  truth, prediction = _handmade()
  metric = segmentation_scores.SegmentationScores(num_classes=NUM_CLASSES)
  _update(metric, truth[:1], prediction[:1])   # two updates: the matrix accumulates
  _update(metric, truth[1:], prediction[1:])
  scores = {name: float(value) for name, value in metric.scores().items()}
  expected = _reference(truth, prediction)
  assert sorted(scores) == sorted(segmentation_scores.METRIC_NAMES)
  for name in segmentation_scores.METRIC_NAMES:
    np.testing.assert_allclose(scores[name], expected[name], rtol=1e-12, err_msg=name)
  # The case is not degenerate: the metrics disagree with each other.
  assert len({round(v, 6) for v in scores.values()}) == 4
  # official.vision's own mean_iou counts the class without ground truth as 0.
  stock_mean_iou = float(tf.reduce_mean(metric.result()))
  assert stock_mean_iou < scores['mIoU']


@pytest.mark.parametrize('seed', [0, 1])
def test_random_maps_match_a_pixel_count(seed):
  rng = np.random.default_rng(seed)
  truth = rng.integers(0, NUM_CLASSES - 1, (3, 16, 16))
  truth[rng.random(truth.shape) < 0.1] = IGNORE
  prediction = np.where(rng.random(truth.shape) < 0.6, truth % NUM_CLASSES,
                        rng.integers(0, NUM_CLASSES, truth.shape))
  metric = segmentation_scores.SegmentationScores(num_classes=NUM_CLASSES)
  _update(metric, truth, prediction)
  expected = _reference(truth, prediction)
  for name, value in metric.scores().items():
    np.testing.assert_allclose(float(value), expected[name], rtol=1e-12, err_msg=name)
