"""The paper's four segmentation metrics (Table 4) from one confusion matrix.

With a confusion matrix M (M[t, p] pixels of true class t predicted as p,
ignored pixels left out), per class c: true positives TP_c = M[c, c], ground
truth G_c = sum_p M[c, p], predictions P_c = sum_t M[t, c]. Classes without a
ground-truth pixel are left out of every mean (the convention of the
semantic-segmentation evaluators the paper's numbers come from):

  mIoU  = mean over classes with G_c > 0 of  TP_c / (G_c + P_c - TP_c)
  fwIoU = sum over those classes of (G_c / sum G) * IoU_c
  mACC  = mean over classes with G_c > 0 of  TP_c / G_c
  pACC  = sum TP / sum G

official.vision's own `mean_iou` averages over every class, absent ones
counting 0; the task reports it too, under its own name.
"""
import tensorflow as tf

from official.vision.evaluation import segmentation_metrics

METRIC_NAMES = ('mIoU', 'fwIoU', 'mACC', 'pACC')


def scores_from_confusion(confusion):
  """{'mIoU', 'fwIoU', 'mACC', 'pACC'} (float64 scalars in [0, 1]) of an
  (num_classes, num_classes) confusion matrix, rows true, columns predicted."""
  confusion = tf.cast(confusion, tf.float64)
  true_positives = tf.linalg.diag_part(confusion)
  ground_truth = tf.reduce_sum(confusion, axis=1)
  predicted = tf.reduce_sum(confusion, axis=0)
  present = ground_truth > 0
  num_present = tf.reduce_sum(tf.cast(present, tf.float64))
  union = ground_truth + predicted - true_positives
  iou = tf.math.divide_no_nan(true_positives, union)
  accuracy = tf.math.divide_no_nan(true_positives, ground_truth)
  total = tf.reduce_sum(ground_truth)
  return {
      'mIoU': tf.math.divide_no_nan(
          tf.reduce_sum(tf.where(present, iou, 0.0)), num_present),
      'fwIoU': tf.math.divide_no_nan(tf.reduce_sum(ground_truth * iou), total),
      'mACC': tf.math.divide_no_nan(
          tf.reduce_sum(tf.where(present, accuracy, 0.0)), num_present),
      'pACC': tf.math.divide_no_nan(tf.reduce_sum(true_positives), total),
  }


class SegmentationScores(segmentation_metrics.PerClassIoU):
  """official.vision's PerClassIoU (same inputs, same confusion matrix), plus
  `scores()`: the four metrics of `scores_from_confusion`.

  update_state(y_true, y_pred): y_true {'masks': (N, H, W, 1) int,
  'valid_masks': (N, H, W, 1) bool, 'image_info': (N, 4, 2)}, y_pred logits
  (N, h, w, num_classes); see segmentation_metrics.MeanIoU.
  """

  def scores(self):
    return scores_from_confusion(self.total_cm)
