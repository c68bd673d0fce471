"""Experiment-config dataclasses of the Panoptic FPN task (Model Garden).

The task is official.vision's Mask R-CNN task (`MaskRCNNTask` config, every
field kept) plus what Panoptic FPN adds:

  task.model.num_classes           Mask R-CNN classes: 1 + T thing classes
  task.model.num_stuff_classes     S; the semantic head predicts S + 1 classes
                                   (0: any thing, s: panoptic category T + s)
  task.model.segmentation_head     official.vision's SegmentationHead config;
                                   Panoptic FPN's head by default (fusion of
                                   P2-P5 at P2, 128 filters, no extra convs)
  task.model.panoptic_fusion       the inference fusion's thresholds
                                   (gc_detection.model_garden.panoptic_fusion)
  task.losses.semantic_weight      the semantic loss's weight in the sum
  task.losses.semantic_ignore_label  semantic label of unlabelled pixels
  task.*_data.parser.groundtruth_padded_size  evaluation masks are compared at
                                   each image's original size, padded to this
  task.seed                        seeds the weight initialisers

`task.model.backbone` takes `resnet_gc` besides every stock type.
"""
import dataclasses
from typing import List, Optional

from official.modeling import hyperparams
from official.vision.configs import maskrcnn as maskrcnn_config
from official.vision.configs import semantic_segmentation as segmentation_config

from gc_detection.model_garden import backbone_config


def panoptic_fpn_head():
  """Panoptic FPN's semantic head: P2-P5 each brought to P2 and summed."""
  return segmentation_config.SegmentationHead(
      level=2, num_convs=0, num_filters=128, feature_fusion='panoptic_fpn_fusion',
      decoder_min_level=2, decoder_max_level=5)


@dataclasses.dataclass
class PanopticFusion(hyperparams.Config):
  """Thresholds of the inference fusion (Detectron2's Panoptic FPN defaults).

  stuff_area_threshold is in pixels of the model's input canvas.
  """
  score_threshold: float = 0.5
  overlap_threshold: float = 0.5
  stuff_area_threshold: int = 4096
  mask_binarize_threshold: float = 0.5


@dataclasses.dataclass
class PanopticFPN(maskrcnn_config.MaskRCNN):
  backbone: backbone_config.Backbone = dataclasses.field(
      default_factory=lambda: backbone_config.Backbone(type='resnet'))
  num_stuff_classes: int = 0
  segmentation_head: segmentation_config.SegmentationHead = dataclasses.field(
      default_factory=panoptic_fpn_head)
  panoptic_fusion: PanopticFusion = dataclasses.field(default_factory=PanopticFusion)


@dataclasses.dataclass
class Parser(maskrcnn_config.Parser):
  groundtruth_padded_size: List[int] = dataclasses.field(
      default_factory=lambda: [640, 640])


@dataclasses.dataclass
class DataConfig(maskrcnn_config.DataConfig):
  parser: Parser = dataclasses.field(default_factory=Parser)


@dataclasses.dataclass
class Losses(maskrcnn_config.Losses):
  semantic_weight: float = 0.5
  semantic_ignore_label: int = 255


@dataclasses.dataclass
class PanopticFPNTask(maskrcnn_config.MaskRCNNTask):
  """official.vision's MaskRCNNTask config with the Panoptic FPN fields."""
  model: PanopticFPN = dataclasses.field(default_factory=PanopticFPN)
  train_data: DataConfig = dataclasses.field(
      default_factory=lambda: DataConfig(is_training=True))
  validation_data: DataConfig = dataclasses.field(
      default_factory=lambda: DataConfig(is_training=False, drop_remainder=False))
  losses: Losses = dataclasses.field(default_factory=Losses)
  seed: Optional[int] = None


def num_thing_classes(model_config):
  """T: the Mask R-CNN's classes without its background class."""
  return model_config.num_classes - 1


def is_thing(model_config):
  """Per panoptic category (0 void, things, stuff): whether it is a thing."""
  things = num_thing_classes(model_config)
  return ([False] + [True] * things + [False] * model_config.num_stuff_classes)
