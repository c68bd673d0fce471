"""Registers gc_detection with official.vision: importing this module is all.

- the backbone type `resnet_gc` (backbone factory),
- the tasks of the GC configs (task factory),
- the experiments (experiment factory): seg_resnet{50,101}_fpn[_gc]_coco,
  seg_resnet50_fpn[_gc]_far_cue, retinanet_resnet50_fpn_gc_coco,
  maskrcnn_resnet50_fpn_gc_coco, panoptic_fpn_resnet50[_gc]_coco,
  panoptic_fpn_resnet50[_gc]_far_cue.

The start-up hook (gc_detection.model_garden.startup_hook) imports it right
after official.vision.registry_imports, so the stock trainer and exporter
know them.
"""
# pylint: disable=unused-import
from gc_detection.model_garden import resnet_gc
from gc_detection.model_garden import segmentation_experiments
from gc_detection.model_garden import segmentation_task
from gc_detection.model_garden import detection_experiments
from gc_detection.model_garden import panoptic_task
from gc_detection.model_garden import panoptic_experiments
