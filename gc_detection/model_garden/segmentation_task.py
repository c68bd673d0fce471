"""The GC semantic-segmentation task: official.vision's, with two changes.

- `initialize` reads a stock ResNet checkpoint into a resnet_gc backbone
  (gc_detection.model_garden.backbone_initialization) and then initialises the
  module from a bottleneck block; every other module, and every stock backbone,
  is read as official.vision reads it.
- Evaluation reports the paper's four metrics (mIoU, fwIoU, mACC, pACC; see
  gc_detection.model_garden.segmentation_scores) from the confusion matrix the
  stock per-class IoU already keeps, besides the stock `mean_iou` and `iou/<c>`,
  and counts every validation batch (the stock task drops the first one).
"""
import tensorflow as tf

from official.core import task_factory
from official.vision.tasks import semantic_segmentation as stock

from gc_detection.model_garden import backbone_initialization
from gc_detection.model_garden import segmentation_config
from gc_detection.model_garden import segmentation_scores
from gc_detection.model_garden import true_image_sizes


@task_factory.register_task_cls(segmentation_config.SegmentationTask)
class SegmentationTask(backbone_initialization.TaskInitialization,
                       true_image_sizes.TrueImageSizes, stock.SemanticSegmentationTask):
  """official.vision's semantic segmentation with resnet_gc and the paper's metrics."""

  def build_model(self):
    if self.task_config.seed is not None:
      tf.keras.utils.set_random_seed(self.task_config.seed)
    return super().build_model()

  def build_metrics(self, training=True):
    metrics = super().build_metrics(training)
    if not training:
      self.iou_metric = segmentation_scores.SegmentationScores(
          name=self.iou_metric.name, num_classes=self.task_config.model.num_classes,
          rescale_predictions=not self.task_config.validation_data.resize_eval_groundtruth,
          dtype=tf.float32)
    return metrics

  def aggregate_logs(self, state=None, step_outputs=None):
    # official.vision resets iou_metric in its first call (state None), which
    # comes after the first validation batch has updated it: that batch was
    # lost (every batch, with validation_steps 1). The metric is reset after
    # each evaluation instead (reduce_aggregated_logs).
    metric, self.iou_metric = self.iou_metric, None
    try:
      return super().aggregate_logs(state, step_outputs)
    finally:
      self.iou_metric = metric

  def reduce_aggregated_logs(self, aggregated_logs, global_step=None):
    logs = super().reduce_aggregated_logs(aggregated_logs, global_step)
    if self.iou_metric is not None:
      logs.update({name: tf.cast(value, tf.float32)
                   for name, value in self.iou_metric.scores().items()})
      self.iou_metric.reset_states()
    return logs
