"""The Panoptic FPN task: official.vision's Mask R-CNN task plus the semantic half.

What it changes of `official.vision.tasks.maskrcnn.MaskRCNNTask`:

- build_model: gc_detection.model_garden.panoptic_model (the stock Mask R-CNN
  and a semantic head), seeded by task.seed when set.
- initialize: a stock ResNet checkpoint into a resnet_gc backbone as well
  (gc_detection.model_garden.backbone_initialization).
- build_inputs: the panoptic decoder and parser (panoptic_input).
- build_losses: the Mask R-CNN losses + semantic_weight x the semantic
  cross-entropy (official.vision's SegmentationLoss), logged as semantic_loss.
- evaluation: besides the stock COCO box/mask metrics, panoptic quality from
  official.vision's PanopticQualityEvaluator at each image's original size:
  PQ, SQ, RQ over all categories, and PQ_th/SQ_th/RQ_th (things) and
  PQ_st/SQ_st/RQ_st (stuff), each in [0, 1].

The stock train_step and validation_step run unchanged.
"""
import numpy as np
import tensorflow as tf

from official.core import task_factory
from official.vision.dataloaders import input_reader
from official.vision.dataloaders import input_reader_factory
from official.vision.evaluation import panoptic_quality_evaluator
from official.vision.losses import segmentation_losses
from official.vision.tasks import maskrcnn as maskrcnn_task
from official.common import dataset_fn as dataset_fn_lib

from gc_detection.model_garden import backbone_initialization
from gc_detection.model_garden import panoptic_config
from gc_detection.model_garden import panoptic_input
from gc_detection.model_garden import panoptic_model
from gc_detection.model_garden import true_image_sizes

MAX_INSTANCES_PER_CATEGORY = 256
# Evaluator result keys -> the logged names (the paper's columns first).
PANOPTIC_SCORES = {
    'PQ': 'All_pq', 'SQ': 'All_sq', 'RQ': 'All_rq',
    'PQ_th': 'Things_pq', 'SQ_th': 'Things_sq', 'RQ_th': 'Things_rq',
    'PQ_st': 'Stuff_pq', 'SQ_st': 'Stuff_sq', 'RQ_st': 'Stuff_rq',
}


def to_original_size(mask, image_info, padded_size):
  """Panoptic masks of the model's canvas back to each image's original size.

  Args:
    mask: int32 (B, H, W) in the input canvas.
    image_info: float (B, 4, 2), official.vision's [[original h, w],
      [scaled h, w], [scale y, x], [offset y, x]].
    padded_size: (gt_h, gt_w), the ground truth's padded size.
  Returns:
    int32 (B, gt_h, gt_w): cropped to the scaled image, resized (nearest) to
    the original size, padded with void (0).
  """
  def one(args):
    image_mask, info = args
    scaled = tf.cast(info[1], tf.int32)
    original = tf.cast(info[0], tf.int32)
    cropped = image_mask[:scaled[0], :scaled[1], tf.newaxis]
    resized = tf.image.resize(cropped, original, method='nearest')
    return tf.image.pad_to_bounding_box(resized, 0, 0, *padded_size)[:, :, 0]

  return tf.map_fn(one, (mask, image_info),
                   fn_output_signature=tf.TensorSpec(padded_size, tf.int32))


@task_factory.register_task_cls(panoptic_config.PanopticFPNTask)
class PanopticFPNTask(backbone_initialization.TaskInitialization,
                      true_image_sizes.TrueImageSizes, maskrcnn_task.MaskRCNNTask):
  """Panoptic FPN trained and evaluated by official.vision's trainer."""

  def build_model(self):
    if self.task_config.seed is not None:
      tf.keras.utils.set_random_seed(self.task_config.seed)
    model_config = self.task_config.model
    input_size = list(model_config.input_size)
    weight_decay = self.task_config.losses.l2_weight_decay
    # Halved as the stock task does, to match tf.nn.l2_loss.
    regularizer = (tf.keras.regularizers.l2(weight_decay / 2.0)
                   if weight_decay else None)
    model = panoptic_model.build_panoptic_fpn(
        tf.keras.layers.InputSpec(shape=[None] + input_size), model_config, regularizer)
    if self.task_config.freeze_backbone:
      model.backbone.trainable = False
    model(tf.keras.Input(input_size), image_shape=tf.keras.layers.Input([2]),
          training=False)
    return model

  def build_inputs(self, params, input_context=None, dataset_fn=None):
    if params.decoder.type != 'simple_decoder':
      raise ValueError(f"decoder.type: the panoptic task reads 'simple_decoder' "
                       f"tf.Examples, got {params.decoder.type!r}")
    model_config = self.task_config.model
    decoder_config = params.decoder.simple_decoder
    decoder = panoptic_input.Decoder(
        regenerate_source_id=decoder_config.regenerate_source_id,
        mask_binarize_threshold=decoder_config.mask_binarize_threshold)
    parser_config = params.parser
    parser = panoptic_input.Parser(
        num_thing_classes=panoptic_config.num_thing_classes(model_config),
        semantic_ignore_label=self.task_config.losses.semantic_ignore_label,
        groundtruth_padded_size=parser_config.groundtruth_padded_size,
        output_size=model_config.input_size[:2],
        min_level=model_config.min_level,
        max_level=model_config.max_level,
        num_scales=model_config.anchor.num_scales,
        aspect_ratios=model_config.anchor.aspect_ratios,
        anchor_size=model_config.anchor.anchor_size,
        rpn_match_threshold=parser_config.rpn_match_threshold,
        rpn_unmatched_threshold=parser_config.rpn_unmatched_threshold,
        rpn_batch_size_per_im=parser_config.rpn_batch_size_per_im,
        rpn_fg_fraction=parser_config.rpn_fg_fraction,
        aug_rand_hflip=parser_config.aug_rand_hflip,
        aug_rand_vflip=parser_config.aug_rand_vflip,
        aug_scale_min=parser_config.aug_scale_min,
        aug_scale_max=parser_config.aug_scale_max,
        aug_type=parser_config.aug_type,
        skip_crowd_during_training=parser_config.skip_crowd_during_training,
        max_num_instances=parser_config.max_num_instances,
        outer_boxes_scale=model_config.outer_boxes_scale,
        mask_crop_size=parser_config.mask_crop_size,
        dtype=params.dtype)
    reader = input_reader_factory.input_reader_generator(
        params,
        dataset_fn=dataset_fn or dataset_fn_lib.pick_dataset_fn(params.file_type),
        decoder_fn=decoder.decode,
        combine_fn=input_reader.create_combine_fn(params),
        parser_fn=parser.parse_fn(params.is_training))
    return reader.read(input_context=input_context)

  def build_losses(self, outputs, labels, aux_losses=None):
    losses = super().build_losses(outputs, labels, aux_losses)
    loss_config = self.task_config.losses
    semantic_loss = segmentation_losses.SegmentationLoss(
        label_smoothing=0.0, class_weights=[],
        ignore_label=loss_config.semantic_ignore_label,
        use_groundtruth_dimension=True)(
            outputs['segmentation_outputs'], labels['gt_segmentation_mask'])
    weighted = loss_config.semantic_weight * semantic_loss
    losses['semantic_loss'] = semantic_loss
    losses['model_loss'] += weighted
    losses['total_loss'] += loss_config.loss_weight * weighted
    return losses

  def build_metrics(self, training=True):
    metrics = super().build_metrics(training)
    if training:
      return metrics + [tf.keras.metrics.Mean('semantic_loss', dtype=tf.float32)]
    model_config = self.task_config.model
    num_categories = len(panoptic_config.is_thing(model_config))
    self.panoptic_quality_metric = panoptic_quality_evaluator.PanopticQualityEvaluator(
        num_categories=num_categories, ignored_label=0,
        max_instances_per_category=MAX_INSTANCES_PER_CATEGORY,
        offset=num_categories * MAX_INSTANCES_PER_CATEGORY,
        is_thing=np.array(panoptic_config.is_thing(model_config)),
        rescale_predictions=True)
    return metrics

  def _update_metrics(self, labels, outputs, logs):
    super()._update_metrics(labels, outputs, logs)
    groundtruths = labels['panoptic_groundtruths']
    padded_size = groundtruths['category_mask'].shape[1:3]
    predictions = {name: to_original_size(outputs[name], labels['image_info'], padded_size)
                   for name in ('category_mask', 'instance_mask')}
    logs[self.panoptic_quality_metric.name] = (groundtruths, predictions)

  def aggregate_logs(self, state=None, step_outputs=None):
    if not state:
      self.panoptic_quality_metric.reset_states()
    state = super().aggregate_logs(state, step_outputs)
    self.panoptic_quality_metric.update_state(
        *step_outputs[self.panoptic_quality_metric.name])
    return state

  def reduce_aggregated_logs(self, aggregated_logs, global_step=None):
    logs = super().reduce_aggregated_logs(aggregated_logs, global_step)
    results = self.panoptic_quality_metric.result()
    logs.update({name: np.float32(results[key]) for name, key in PANOPTIC_SCORES.items()})
    return logs
