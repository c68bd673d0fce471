"""RetinaNet and Mask R-CNN of official.vision with the resnet_gc backbone.

The GC backbone is a backbone like any other, so official.vision's detectors
take it as they are: these experiments are the stock COCO experiments
(`retinanet_resnetfpn_coco`, `maskrcnn_resnetfpn_coco`, their data, schedule and
ImageNet init_checkpoint) with `task.model.backbone` set to resnet_gc. Their task
configs subclass the stock ones only to let the backbone be resnet_gc; their
tasks are the stock tasks with gc_detection's `initialize` (a stock ResNet
checkpoint into the resnet_gc backbone, then the bottleneck initialisation).

  retinanet_resnet50_fpn_gc_coco, maskrcnn_resnet50_fpn_gc_coco
"""
import dataclasses

from official.core import config_definitions as cfg
from official.core import exp_factory
from official.core import task_factory
from official.vision.configs import maskrcnn as maskrcnn_config
from official.vision.configs import retinanet as retinanet_config
from official.vision.tasks import maskrcnn as maskrcnn_task
from official.vision.tasks import retinanet as retinanet_task

from gc_detection.model_garden import backbone_config
from gc_detection.model_garden import backbone_initialization
from gc_detection.model_garden import true_image_sizes


def _gc_backbone():
  return backbone_config.Backbone(type='resnet_gc')


@dataclasses.dataclass
class RetinaNetModel(retinanet_config.RetinaNet):
  backbone: backbone_config.Backbone = dataclasses.field(default_factory=_gc_backbone)


@dataclasses.dataclass
class RetinaNetTaskConfig(retinanet_config.RetinaNetTask):
  model: RetinaNetModel = dataclasses.field(default_factory=RetinaNetModel)


@dataclasses.dataclass
class MaskRCNNModel(maskrcnn_config.MaskRCNN):
  backbone: backbone_config.Backbone = dataclasses.field(default_factory=_gc_backbone)


@dataclasses.dataclass
class MaskRCNNTaskConfig(maskrcnn_config.MaskRCNNTask):
  model: MaskRCNNModel = dataclasses.field(default_factory=MaskRCNNModel)


@task_factory.register_task_cls(RetinaNetTaskConfig)
class RetinaNetTask(backbone_initialization.TaskInitialization,
                    true_image_sizes.TrueImageSizes, retinanet_task.RetinaNetTask):
  """official.vision's RetinaNet task with a resnet_gc-aware initialize."""


@task_factory.register_task_cls(MaskRCNNTaskConfig)
class MaskRCNNTask(backbone_initialization.TaskInitialization,
                   true_image_sizes.TrueImageSizes, maskrcnn_task.MaskRCNNTask):
  """official.vision's Mask R-CNN task with a resnet_gc-aware initialize."""


def with_gc_backbone(stock_experiment, task_config_class, model_id=50):
  """The stock experiment, its task in task_config_class with a resnet_gc backbone."""
  stock = exp_factory.get_exp_config(stock_experiment)
  task = task_config_class()
  task.override(stock.task.as_dict(), is_strict=True)
  task.model.backbone = backbone_config.Backbone(
      type='resnet_gc', resnet_gc=backbone_config.ResNetGlobalContext(model_id=model_id))
  return cfg.ExperimentConfig(task=task, trainer=stock.trainer, runtime=stock.runtime,
                              restrictions=stock.restrictions)


exp_factory.register_config_factory('retinanet_resnet50_fpn_gc_coco')(
    lambda: with_gc_backbone('retinanet_resnetfpn_coco', RetinaNetTaskConfig))
exp_factory.register_config_factory('maskrcnn_resnet50_fpn_gc_coco')(
    lambda: with_gc_backbone('maskrcnn_resnetfpn_coco', MaskRCNNTaskConfig))
