"""Registered Panoptic FPN experiments (paper Table 5).

COCO (`panoptic_fpn_resnet50_coco`, stock; `panoptic_fpn_resnet50_gc_coco`,
GC): official.vision's `maskrcnn_resnetfpn_coco` experiment (its 1024x1024
input, augmentation, schedule, runtime and ImageNet init_checkpoint) as a
Panoptic FPN: 80 thing classes (1-80) and 53 stuff classes (81-133) of COCO
panoptic 2017, made by `python -m gc_detection.cli.prepare_coco_panoptic`,
semantic loss weight 0.5 (Panoptic FPN's COCO setting). The box and mask AP
come from official.vision's COCO evaluator on an annotation file it writes
from the val records (the class ids are the contiguous 1-80, not COCO's).

Far-cue (`panoptic_fpn_resnet50_far_cue`, `panoptic_fpn_resnet50_gc_far_cue`):
the same model on the strips of `python -m
gc_detection.cli.make_far_cue_panoptic_dataset`, sized for a CPU.

Each pair differs only in `task.model.backbone`. Paths are relative to the
directory the trainer runs in (the checkout root in the README's commands).
"""
from official.core import config_definitions as cfg
from official.core import exp_factory
from official.vision.configs import maskrcnn as maskrcnn_config

from gc_detection.data import far_cue_panoptic
from gc_detection.model_garden import panoptic_config
from gc_detection.model_garden import segmentation_experiments

COCO_PANOPTIC_DIR = 'data/coco_panoptic'
COCO_THING_CLASSES = 80
COCO_STUFF_CLASSES = 53


def coco_experiment(global_context):
  """Table 5's setting on official.vision's Mask R-CNN recipe, stock or GC."""
  stock = exp_factory.get_exp_config('maskrcnn_resnetfpn_coco')
  task = panoptic_config.PanopticFPNTask()
  task.override(stock.task.as_dict(), is_strict=False)
  task.model.backbone = segmentation_experiments.backbone(50, global_context)
  task.model.num_classes = COCO_THING_CLASSES + 1
  task.model.num_stuff_classes = COCO_STUFF_CLASSES
  task.annotation_file = None
  task.train_data.input_path = f'{COCO_PANOPTIC_DIR}/train-*.tfrecord'
  task.validation_data.input_path = f'{COCO_PANOPTIC_DIR}/val-*.tfrecord'
  return cfg.ExperimentConfig(task=task, trainer=stock.trainer, runtime=stock.runtime,
                              restrictions=stock.restrictions)


FAR_CUE_DIR = 'data/far_cue_panoptic'


def far_cue_experiment(global_context):
  """The CPU-sized pair on panoptic far-cue strips (64x512, 3 things, 7 stuff).

  ResNet-50-FPN from random weights, batch 4, the far-cue segmentation pair's
  training (segmentation_experiments.far_cue_experiment_config); fewer
  proposals, sampled RoIs and detections than COCO's, anchors from 16 px;
  stuff regions from 256 px.
  """
  batch_size = 4
  num_val = 100
  spec = far_cue_panoptic.PANOPTIC_SPEC
  task = panoptic_config.PanopticFPNTask(
      model=panoptic_config.PanopticFPN(
          num_classes=far_cue_panoptic.NUM_THING_CLASSES + 1,
          num_stuff_classes=far_cue_panoptic.NUM_STUFF_CLASSES,
          input_size=[spec.height, spec.width, 3],
          backbone=segmentation_experiments.backbone(50, global_context),
          anchor=maskrcnn_config.Anchor(anchor_size=4.0),
          roi_generator=maskrcnn_config.ROIGenerator(
              pre_nms_top_k=1000, num_proposals=256, test_pre_nms_top_k=500,
              test_num_proposals=100),
          roi_sampler=maskrcnn_config.ROISampler(num_sampled_rois=128),
          mask_sampler=maskrcnn_config.MaskSampler(num_sampled_masks=32),
          detection_generator=maskrcnn_config.DetectionGenerator(
              pre_nms_top_k=500, max_num_detections=16),
          panoptic_fusion=panoptic_config.PanopticFusion(stuff_area_threshold=256)),
      losses=panoptic_config.Losses(l2_weight_decay=1e-4),
      train_data=panoptic_config.DataConfig(
          input_path=f'{FAR_CUE_DIR}/train.tfrecord', is_training=True,
          global_batch_size=batch_size, dtype='float32', shuffle_buffer_size=400,
          parser=panoptic_config.Parser(groundtruth_padded_size=[spec.height,
                                                                  spec.width])),
      validation_data=panoptic_config.DataConfig(
          input_path=f'{FAR_CUE_DIR}/val.tfrecord', is_training=False,
          global_batch_size=batch_size, dtype='float32', drop_remainder=False,
          num_examples=num_val,
          parser=panoptic_config.Parser(groundtruth_padded_size=[spec.height,
                                                                  spec.width])))
  return segmentation_experiments.far_cue_experiment_config(task, batch_size, num_val)


exp_factory.register_config_factory('panoptic_fpn_resnet50_coco')(
    lambda: coco_experiment(global_context=False))
exp_factory.register_config_factory('panoptic_fpn_resnet50_gc_coco')(
    lambda: coco_experiment(global_context=True))
exp_factory.register_config_factory('panoptic_fpn_resnet50_far_cue')(
    lambda: far_cue_experiment(global_context=False))
exp_factory.register_config_factory('panoptic_fpn_resnet50_gc_far_cue')(
    lambda: far_cue_experiment(global_context=True))
