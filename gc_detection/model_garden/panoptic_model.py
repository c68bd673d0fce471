"""Panoptic FPN: official.vision's Mask R-CNN plus a semantic head on its FPN.

The Mask R-CNN (backbone, FPN, RPN, box and mask heads) is the one
`official.vision.modeling.factory.build_maskrcnn` builds, unchanged; the
semantic head is official.vision's `SegmentationHead` with its
`panoptic_fpn_fusion` (nn_layers.PanopticFPNFusion) reading the same FPN
levels the detector reads.
"""
from typing import Any, Mapping, Optional

import tensorflow as tf

from official.vision.modeling import factory
from official.vision.modeling import maskrcnn_model
from official.vision.modeling.heads import segmentation_heads

from gc_detection.model_garden import panoptic_config
from gc_detection.model_garden import panoptic_fusion


@tf.keras.utils.register_keras_serializable(package='gc_detection')
class PanopticFPNModel(maskrcnn_model.MaskRCNNModel):
  """Mask R-CNN + semantic head; at inference also the fused panoptic masks.

  Outputs, besides every Mask R-CNN output:
    segmentation_outputs: float (B, H/4, W/4, S + 1) semantic logits.
    category_mask, instance_mask: int32 (B, H, W), inference only (see
      gc_detection.model_garden.panoptic_fusion for the ids).
  """

  def __init__(self, segmentation_head, panoptic_fusion_layer, segmentation_levels,
               **maskrcnn_layers):
    super().__init__(**maskrcnn_layers)
    self._config_dict.update(segmentation_head=segmentation_head,
                             panoptic_fusion_layer=panoptic_fusion_layer,
                             segmentation_levels=segmentation_levels)
    self.segmentation_head = segmentation_head
    self.panoptic_fusion_layer = panoptic_fusion_layer
    self._segmentation_levels = [str(level) for level in segmentation_levels]

  def call(self, images, image_shape, anchor_boxes=None, gt_boxes=None,
           gt_classes=None, gt_masks=None, gt_outer_boxes=None,
           training: Optional[bool] = None) -> Mapping[str, Any]:
    outputs = super().call(images, image_shape, anchor_boxes=anchor_boxes,
                           gt_boxes=gt_boxes, gt_classes=gt_classes, gt_masks=gt_masks,
                           gt_outer_boxes=gt_outer_boxes, training=training)
    # PanopticFPNFusion is a functional model of exactly these levels (the FPN
    # has one more, P6, for the RPN).
    fpn_levels = {level: outputs['decoder_features'][level]
                  for level in self._segmentation_levels}
    logits = self.segmentation_head((outputs['backbone_features'], fpn_levels))
    outputs['segmentation_outputs'] = logits
    if not training:
      detections = {name: outputs[name] for name in panoptic_fusion.DETECTION_INPUTS}
      outputs.update(self.panoptic_fusion_layer(
          detections, logits, image_shape, canvas_size=images.shape[1:3]))
    return outputs

  @property
  def checkpoint_items(self):
    items = dict(super().checkpoint_items)
    items['segmentation_head'] = self.segmentation_head
    return items


def build_panoptic_fpn(input_specs, model_config: panoptic_config.PanopticFPN,
                       l2_regularizer=None) -> PanopticFPNModel:
  """The stock Mask R-CNN of model_config with Panoptic FPN's semantic head.

  Raises:
    ValueError: num_stuff_classes below 1, or a head that does not read the
      FPN the way Panoptic FPN does (named with the field).
  """
  if model_config.num_stuff_classes < 1:
    raise ValueError('task.model.num_stuff_classes: must be >= 1, got '
                     f'{model_config.num_stuff_classes}')
  head_config = model_config.segmentation_head
  if head_config.feature_fusion != 'panoptic_fpn_fusion':
    raise ValueError("task.model.segmentation_head.feature_fusion: must be "
                     f"'panoptic_fpn_fusion', got {head_config.feature_fusion!r}")
  levels = range(int(head_config.decoder_min_level), int(head_config.decoder_max_level) + 1)
  if levels.start < model_config.min_level or levels.stop - 1 > model_config.max_level:
    raise ValueError(
        'task.model.segmentation_head.decoder_min_level, decoder_max_level: '
        f'{levels.start}..{levels.stop - 1} is outside the FPN levels '
        f'{model_config.min_level}..{model_config.max_level}')
  maskrcnn = factory.build_maskrcnn(input_specs=input_specs, model_config=model_config,
                                    l2_regularizer=l2_regularizer)
  norm = model_config.norm_activation
  head = segmentation_heads.SegmentationHead(
      num_classes=model_config.num_stuff_classes + 1,
      level=head_config.level,
      num_convs=head_config.num_convs,
      prediction_kernel_size=head_config.prediction_kernel_size,
      num_filters=head_config.num_filters,
      use_depthwise_convolution=head_config.use_depthwise_convolution,
      upsample_factor=head_config.upsample_factor,
      feature_fusion=head_config.feature_fusion,
      decoder_min_level=levels.start,
      decoder_max_level=levels.stop - 1,
      num_decoder_filters=model_config.decoder.get().num_filters,
      activation=norm.activation,
      use_sync_bn=norm.use_sync_bn,
      norm_momentum=norm.norm_momentum,
      norm_epsilon=norm.norm_epsilon,
      kernel_regularizer=l2_regularizer,
      name='segmentation_head')
  fusion_config = model_config.panoptic_fusion
  fusion = panoptic_fusion.PanopticFusion(
      num_thing_classes=panoptic_config.num_thing_classes(model_config),
      score_threshold=fusion_config.score_threshold,
      overlap_threshold=fusion_config.overlap_threshold,
      stuff_area_threshold=fusion_config.stuff_area_threshold,
      mask_binarize_threshold=fusion_config.mask_binarize_threshold,
      name='panoptic_fusion')
  return PanopticFPNModel(segmentation_head=head, panoptic_fusion_layer=fusion,
                          segmentation_levels=list(levels), **maskrcnn.get_config())
