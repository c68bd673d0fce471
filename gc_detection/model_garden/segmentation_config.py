"""Experiment-config dataclasses of the GC semantic-segmentation task.

They are official.vision's semantic-segmentation configs, with one change: the
model's `backbone` knows the `resnet_gc` type besides every stock one (the
default is resnet_gc). An experiment of this task with `type: resnet` is the
stock model, trained and scored the same way.
"""
import dataclasses
from typing import Optional

from official.vision.configs import semantic_segmentation as stock

from gc_detection.model_garden import backbone_config


@dataclasses.dataclass
class SegmentationModel(stock.SemanticSegmentationModel):
  backbone: backbone_config.Backbone = dataclasses.field(
      default_factory=lambda: backbone_config.Backbone(type='resnet_gc'))


@dataclasses.dataclass
class SegmentationTask(stock.SemanticSegmentationTask):
  """official.vision's SemanticSegmentationTask config with resnet_gc.

  seed: when set, seeds Python, NumPy and TensorFlow (the weight
    initialisers) before the model is built; official.vision has no such
    setting (its `seed` fields seed the input pipelines only).
  """
  model: SegmentationModel = dataclasses.field(default_factory=SegmentationModel)
  seed: Optional[int] = None
