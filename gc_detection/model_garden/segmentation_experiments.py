"""Registered semantic-segmentation experiments (paper Table 4).

COCO (`seg_resnet{50,101}_fpn_coco`, stock; `seg_resnet{50,101}_fpn_gc_coco`,
GC): the semantic branch of Panoptic FPN as the paper evaluates it, 54 classes
of COCO panoptic val2017 (0: any thing, 1-53: the stuff classes in category-id
order, 255: unlabelled), made by `python -m gc_detection.cli.prepare_coco_semantic`.
ResNet-FPN (P2-P5) with official.vision's pyramid fusion at P2 (every level
resized to 1/4 and summed, the Panoptic FPN fusion; the stock
`panoptic_fpn_fusion` option is avoided: official.vision's segmentation
factory does not pass it the decoder levels), 1024x1024 inputs, the 1x
schedule of the paper's Detectron2 recipe (batch 16, 90k steps, steps at 60k and
80k), the ImageNet ResNet-50 of Model Garden as init_checkpoint.

Far-cue (`seg_resnet50_fpn_far_cue`, `seg_resnet50_fpn_gc_far_cue`): the same
model on the far-cue strips of `python -m
gc_detection.cli.make_far_cue_segmentation_dataset`, sized for a CPU.

Each pair differs only in `task.model.backbone`. Paths are relative to the
directory the trainer runs in (the checkout root in the README's commands).
"""
from official.core import config_definitions as cfg
from official.core import exp_factory
from official.modeling import optimization
from official.vision.configs import common
from official.vision.configs import decoders
from official.vision.configs import semantic_segmentation as stock

from gc_detection.model_garden import backbone_config
from gc_detection.model_garden import segmentation_config

COCO_SEMANTIC_DIR = 'data/coco_semantic'
COCO_SEMANTIC_CLASSES = 54
COCO_VAL_IMAGES = 5000
# Model Garden's ImageNet ResNet-50 (the init_checkpoint of its own ResNet-FPN
# experiments); readable with tf.io.gfile from anywhere with internet access.
RESNET50_IMAGENET = 'gs://cloud-tpu-checkpoints/vision-2.0/resnet50_imagenet/ckpt-28080'
IGNORE_LABEL = 255


def backbone(model_id, global_context):
  """task.model.backbone: stock `resnet` or `resnet_gc` of depth model_id."""
  if not global_context:
    return backbone_config.Backbone(
        type='resnet', resnet=backbone_config.backbones.ResNet(model_id=model_id))
  return backbone_config.Backbone(
      type='resnet_gc',
      resnet_gc=backbone_config.ResNetGlobalContext(model_id=model_id))


def fpn_segmentation_model(num_classes, input_size, model_id, global_context):
  """ResNet(-GC)-FPN P2-P5 with a pyramid-fusion head at P2."""
  return segmentation_config.SegmentationModel(
      num_classes=num_classes,
      input_size=list(input_size),
      min_level=2,
      max_level=5,
      backbone=backbone(model_id, global_context),
      decoder=decoders.Decoder(type='fpn', fpn=decoders.FPN()),
      head=stock.SegmentationHead(level=2, num_convs=2, num_filters=128,
                                  feature_fusion='pyramid_fusion'),
      norm_activation=common.NormActivation(activation='relu', use_sync_bn=True))


def coco_experiment(model_id, global_context):
  """The paper's Table 4 setting for one depth, stock or GC."""
  batch_size = 16
  train_steps = 90000
  eval_batch_size = 8
  task = segmentation_config.SegmentationTask(
      model=fpn_segmentation_model(COCO_SEMANTIC_CLASSES, (1024, 1024, 3), model_id,
                                   global_context),
      losses=stock.Losses(l2_weight_decay=1e-4, ignore_label=IGNORE_LABEL),
      init_checkpoint=RESNET50_IMAGENET if model_id == 50 else None,
      init_checkpoint_modules='backbone',
      train_data=stock.DataConfig(
          input_path=f'{COCO_SEMANTIC_DIR}/train-*.tfrecord',
          is_training=True,
          global_batch_size=batch_size,
          output_size=[1024, 1024],
          aug_scale_min=0.8,
          aug_scale_max=1.25),
      validation_data=stock.DataConfig(
          input_path=f'{COCO_SEMANTIC_DIR}/val-*.tfrecord',
          is_training=False,
          global_batch_size=eval_batch_size,
          output_size=[1024, 1024],
          resize_eval_groundtruth=False,
          groundtruth_padded_size=[640, 640],
          drop_remainder=False))
  return cfg.ExperimentConfig(
      task=task,
      trainer=cfg.TrainerConfig(
          train_steps=train_steps,
          validation_steps=-(-COCO_VAL_IMAGES // eval_batch_size),
          validation_interval=5000,
          steps_per_loop=500,
          summary_interval=500,
          checkpoint_interval=5000,
          optimizer_config=optimization.OptimizationConfig({
              'optimizer': {'type': 'sgd', 'sgd': {'momentum': 0.9}},
              'learning_rate': {
                  'type': 'stepwise',
                  'stepwise': {'boundaries': [60000, 80000],
                               'values': [0.02, 0.002, 0.0002]}},
              'warmup': {'type': 'linear',
                         'linear': {'warmup_steps': 1000,
                                    'warmup_learning_rate': 0.00002}},
          })),
      restrictions=['task.train_data.is_training != None',
                    'task.validation_data.is_training != None'])


FAR_CUE_DIR = 'data/far_cue_segmentation'
FAR_CUE_CLASSES = 7
FAR_CUE_SIZE = (64, 448)


def far_cue_experiment(global_context):
  """The CPU-sized pair on far-cue strips (gc_detection.data.far_cue_strips).

  ResNet-50-FPN from random weights (no ImageNet checkpoint on a CPU-only
  machine; set task.init_checkpoint to use one), 64x448 strips, batch 4,
  Adam with a warm-up, 600 steps: the optimizer of the far-cue detection pair.
  """
  batch_size = 4
  num_val = 100
  task = segmentation_config.SegmentationTask(
      model=fpn_segmentation_model(FAR_CUE_CLASSES, FAR_CUE_SIZE + (3,), 50,
                                   global_context),
      losses=stock.Losses(l2_weight_decay=1e-4, ignore_label=IGNORE_LABEL),
      train_data=stock.DataConfig(
          input_path=f'{FAR_CUE_DIR}/train.tfrecord', is_training=True,
          global_batch_size=batch_size, output_size=list(FAR_CUE_SIZE),
          shuffle_buffer_size=400),
      validation_data=stock.DataConfig(
          input_path=f'{FAR_CUE_DIR}/val.tfrecord', is_training=False,
          global_batch_size=batch_size, output_size=list(FAR_CUE_SIZE),
          resize_eval_groundtruth=True, drop_remainder=False))
  task.model.norm_activation.use_sync_bn = False
  return far_cue_experiment_config(task, batch_size, num_val)


def far_cue_experiment_config(task, batch_size, num_val, train_steps=600):
  """A far-cue task's experiment: the training every far-cue pair of Model Garden shares.

  Adam 3e-4 after a 50-step warm-up (the optimizer of the far-cue detection
  pair), an evaluation and a checkpoint every 100 steps.
  """
  return cfg.ExperimentConfig(
      task=task,
      trainer=cfg.TrainerConfig(
          train_steps=train_steps,
          validation_steps=num_val // batch_size,
          validation_interval=100,
          steps_per_loop=100,
          summary_interval=100,
          checkpoint_interval=100,
          max_to_keep=10,
          optimizer_config=optimization.OptimizationConfig({
              'optimizer': {'type': 'adam', 'adam': {}},
              'learning_rate': {'type': 'constant',
                                'constant': {'learning_rate': 3e-4}},
              'warmup': {'type': 'linear',
                         'linear': {'warmup_steps': 50,
                                    'warmup_learning_rate': 3e-5}},
          })),
      restrictions=['task.train_data.is_training != None',
                    'task.validation_data.is_training != None'])


COCO_EXPERIMENTS = {
    f'seg_resnet{model_id}_fpn{"_gc" if global_context else ""}_coco':
        (model_id, global_context)
    for model_id in (50, 101) for global_context in (False, True)
}


def _register(name, model_id, global_context):
  exp_factory.register_config_factory(name)(
      lambda: coco_experiment(model_id, global_context))


for _name, (_model_id, _global_context) in COCO_EXPERIMENTS.items():
  _register(_name, _model_id, _global_context)
exp_factory.register_config_factory('seg_resnet50_fpn_far_cue')(
    lambda: far_cue_experiment(global_context=False))
exp_factory.register_config_factory('seg_resnet50_fpn_gc_far_cue')(
    lambda: far_cue_experiment(global_context=True))
