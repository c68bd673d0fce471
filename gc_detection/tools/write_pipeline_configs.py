r"""Writes the ready-made pipeline.config files in pipeline_configs/.

The configs share almost everything, so they are rendered from one template
per meta-architecture; a test checks that the committed files equal this
output. Run after changing the template:

  python -m gc_detection.tools.write_pipeline_configs [--output_dir=pipeline_configs]

Paths use the OD API's PATH_TO_BE_CONFIGURED placeholder: replace it with your
data and checkpoint directories (see WORKSPACE.md).
"""
import dataclasses
import os
from typing import Optional

from absl import app
from absl import flags

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

# The paper's Faster R-CNN (sections 3.2, 4.1): ResNet C4 backbone, 600-1024
# keep-aspect resize, frozen batch norm, ImageNet initialisation. Images are
# padded to 1024x1024 so a batch has one shape (and XLA/TPU see static shapes).
_FASTER_RCNN_TEMPLATE = """\
# {title}
#
# {description}
# Paper settings: images resized to min 600 / max 1024 keeping the aspect ratio
# (padded to 1024x1024 so a batch has one shape), frozen batch norm, ImageNet
# start (make the checkpoint with the ImageNet conversion tool, WORKSPACE.md).
# Replace every PATH_TO_BE_CONFIGURED. Written by
# gc_detection.tools.write_pipeline_configs; edit freely.

model {{
  faster_rcnn {{
    num_classes: 90
    image_resizer {{
      keep_aspect_ratio_resizer {{
        min_dimension: 600
        max_dimension: 1024
        pad_to_max_dimension: true
      }}
    }}
    feature_extractor {{
      type: '{extractor}'
      batch_norm_trainable: false
    }}
    first_stage_anchor_generator {{
      grid_anchor_generator {{
        scales: [0.25, 0.5, 1.0, 2.0]
        aspect_ratios: [0.5, 1.0, 2.0]
        height_stride: 16
        width_stride: 16
      }}
    }}
    first_stage_box_predictor_conv_hyperparams {{
      op: CONV
      regularizer {{
        l2_regularizer {{
          weight: 0.0
        }}
      }}
      initializer {{
        truncated_normal_initializer {{
          stddev: 0.01
        }}
      }}
    }}
    first_stage_nms_score_threshold: 0.0
    first_stage_nms_iou_threshold: 0.7
    first_stage_max_proposals: 300
    first_stage_localization_loss_weight: 2.0
    first_stage_objectness_loss_weight: 1.0
    initial_crop_size: 14
    maxpool_kernel_size: 2
    maxpool_stride: 2
    second_stage_box_predictor {{
      mask_rcnn_box_predictor {{
        use_dropout: false
        dropout_keep_probability: 1.0
        fc_hyperparams {{
          op: FC
          regularizer {{
            l2_regularizer {{
              weight: 0.0
            }}
          }}
          initializer {{
            variance_scaling_initializer {{
              factor: 1.0
              uniform: true
              mode: FAN_AVG
            }}
          }}
        }}
        share_box_across_classes: true{mask_predictor}
      }}
    }}
    second_stage_post_processing {{
      batch_non_max_suppression {{
        score_threshold: 0.0
        iou_threshold: 0.6
        max_detections_per_class: 100
        max_total_detections: 300
      }}
      score_converter: SOFTMAX
    }}
    second_stage_localization_loss_weight: 2.0
    second_stage_classification_loss_weight: 1.0{mask_loss}
    use_static_shapes: true
    use_matmul_crop_and_resize: true
    clip_anchors_to_image: true
    use_static_balanced_label_sampler: true
    use_matmul_gather_in_matcher: true
  }}
}}

train_config: {{
  batch_size: 8
  num_steps: 180000
  optimizer {{
{optimizer}
    use_moving_average: false
  }}
  fine_tune_checkpoint_version: V2
  fine_tune_checkpoint: "PATH_TO_BE_CONFIGURED/{backbone}_imagenet/ckpt-0"
  fine_tune_checkpoint_type: "classification"
  data_augmentation_options {{
    random_horizontal_flip {{
    }}
  }}
  max_number_of_boxes: 100
  unpad_groundtruth_tensors: false
}}

train_input_reader: {{
  label_map_path: "PATH_TO_BE_CONFIGURED/label_map.pbtxt"
  tf_record_input_reader {{
    input_path: "PATH_TO_BE_CONFIGURED/train2017-?????-of-00100.tfrecord"
  }}{mask_input}
}}

eval_config: {{
  metrics_set: "coco_detection_metrics"{mask_metrics}
  use_moving_averages: false
  batch_size: 1
}}

eval_input_reader: {{
  label_map_path: "PATH_TO_BE_CONFIGURED/label_map.pbtxt"
  shuffle: false
  num_epochs: 1
  tf_record_input_reader {{
    input_path: "PATH_TO_BE_CONFIGURED/val2017-?????-of-00050.tfrecord"
  }}{mask_input}
}}
{gc_block}"""

# Momentum SGD for the stock baselines: the usual "1x" COCO schedule (lr 0.02
# at batch 16) scaled linearly to batch 8.
_MOMENTUM = """\
    momentum_optimizer: {
      learning_rate: {
        cosine_decay_learning_rate {
          learning_rate_base: 0.01
          total_steps: 180000
          warmup_learning_rate: 0.001
          warmup_steps: 2000
        }
      }
      momentum_optimizer_value: 0.9
    }"""

# Adam, then momentum SGD, for the Faster R-CNN GC models: the paper (Table 6)
# reports that momentum SGD alone diverges with the attention module on Faster
# R-CNN and that Adam followed by SGD reaches 34.1 AP. The paper gives the
# order, not the step counts; these are ours: the baselines' 180k steps at
# batch 8, the first third with Adam (lr 1e-4, the usual Adam rate for
# detection fine-tuning, cosine to 0 at the switch), the rest with the
# baselines' SGD (lr 0.01 = 0.02 at batch 16 scaled to 8; 1000 steps at 0.001
# after the switch as a warm-up, steps down 10x at 140k and 170k, the 1x
# schedule's 78% and 94%). scripts/train.sh runs the two phases.
_ADAM = """\
    adam_optimizer: {
      learning_rate: {
        cosine_decay_learning_rate {
          learning_rate_base: 0.0001
          total_steps: 60000
          warmup_learning_rate: 0.00001
          warmup_steps: 2000
        }
      }
    }"""
_TRAINING_PHASES = """\
  training_phases {
    first_phase_steps: 60000
    second_phase_optimizer {
      momentum_optimizer: {
        learning_rate: {
          manual_step_learning_rate {
            initial_learning_rate: 0.001
            schedule { step: 61000 learning_rate: 0.01 }
            schedule { step: 140000 learning_rate: 0.001 }
            schedule { step: 170000 learning_rate: 0.0001 }
          }
        }
        momentum_optimizer_value: 0.9
      }
      use_moving_average: false
    }
  }
"""

_MASK_PREDICTOR = """
        predict_instance_masks: true
        mask_height: 33
        mask_width: 33
        mask_prediction_conv_depth: 0
        mask_prediction_num_conv_layers: 4
        conv_hyperparams {
          op: CONV
          regularizer {
            l2_regularizer {
              weight: 0.0
            }
          }
          initializer {
            truncated_normal_initializer {
              stddev: 0.01
            }
          }
        }"""


@dataclasses.dataclass(frozen=True)
class FasterRcnnConfig:
  """One config file: its name, backbone, and GC layers x heads (None: stock)."""
  filename: str
  depth: int
  gc_layers_heads: Optional[tuple] = None
  with_masks: bool = False
  paper_ap: str = ''

  def render(self):
    backbone = f'resnet{self.depth}'
    is_gc = self.gc_layers_heads is not None
    model = 'Mask R-CNN' if self.with_masks else 'Faster R-CNN'
    if is_gc:
      layers, heads = self.gc_layers_heads
      title = (f'{model} ResNet-{self.depth} + global context '
               f'({layers} layer(s) x {heads} heads)')
      extractor = f'faster_rcnn_{backbone}_gc'
      gc_block = _gc_block(layers, heads, _TRAINING_PHASES)
    else:
      title = f'{model} ResNet-{self.depth}, stock OD API extractor (baseline)'
      extractor = f'faster_rcnn_{backbone}_keras'
      gc_block = ''
    return _FASTER_RCNN_TEMPLATE.format(
        title=title,
        description=self.paper_ap or 'See the paper\'s Tables 1 and 3.',
        extractor=extractor,
        backbone=backbone,
        optimizer=_ADAM if is_gc else _MOMENTUM,
        mask_predictor=_MASK_PREDICTOR if self.with_masks else '',
        mask_loss=('\n    second_stage_mask_prediction_loss_weight: 4.0'
                   '\n    # The input pipeline resizes masks with the image; a second'
                   '\n    # resize in the model fails with a padded (3-channel pad'
                   '\n    # value) keep_aspect_ratio_resizer.'
                   '\n    resize_masks: false'
                   '\n    number_of_stages: 3'
                   if self.with_masks else ''),
        mask_input=('\n  load_instance_masks: true\n  mask_type: PNG_MASKS'
                    if self.with_masks else ''),
        mask_metrics=('\n  metrics_set: "coco_mask_metrics"'
                      if self.with_masks else ''),
        gc_block=gc_block)


# RetinaNet = the OD API's SSD with a ResNet-FPN extractor, a shared
# convolutional box predictor and focal loss (Lin et al. 2017), following the
# OD API's own ssd_resnet50_v1_fpn_640x640 config; frozen batch norm as in the
# paper. Momentum SGD: the paper's Table 6 shows it works for RetinaNet + GC.
_RETINANET_TEMPLATE = """\
# {title}
#
# {description}
# RetinaNet: SSD with a ResNet-FPN (P3-P7) extractor, a shared convolutional
# box predictor and focal loss. {resize_note}
# Replace every PATH_TO_BE_CONFIGURED. Written by
# gc_detection.tools.write_pipeline_configs; edit freely.

model {{
  ssd {{
    inplace_batchnorm_update: true
    freeze_batchnorm: true
    num_classes: 90
    box_coder {{
      faster_rcnn_box_coder {{
        y_scale: 10.0
        x_scale: 10.0
        height_scale: 5.0
        width_scale: 5.0
      }}
    }}
    matcher {{
      argmax_matcher {{
        matched_threshold: 0.5
        unmatched_threshold: 0.5
        ignore_thresholds: false
        negatives_lower_than_unmatched: true
        force_match_for_each_row: true
        use_matmul_gather: true
      }}
    }}
    similarity_calculator {{
      iou_similarity {{
      }}
    }}
    encode_background_as_zeros: true
    anchor_generator {{
      multiscale_anchor_generator {{
        min_level: 3
        max_level: 7
        anchor_scale: 4.0
        aspect_ratios: [1.0, 2.0, 0.5]
        scales_per_octave: 2
      }}
    }}
    image_resizer {{
{resizer}
    }}
    box_predictor {{
      weight_shared_convolutional_box_predictor {{
        depth: 256
        class_prediction_bias_init: -4.6
        conv_hyperparams {{
          activation: RELU_6,
          regularizer {{
            l2_regularizer {{
              weight: 0.0004
            }}
          }}
          initializer {{
            random_normal_initializer {{
              stddev: 0.01
              mean: 0.0
            }}
          }}
          batch_norm {{
            scale: true,
            decay: 0.997,
            epsilon: 0.001,
          }}
        }}
        num_layers_before_predictor: 4
        kernel_size: 3
      }}
    }}
    feature_extractor {{
      type: '{extractor}'
      fpn {{
        min_level: 3
        max_level: 7
      }}
      min_depth: 16
      depth_multiplier: 1.0
      conv_hyperparams {{
        activation: RELU_6,
        regularizer {{
          l2_regularizer {{
            weight: 0.0004
          }}
        }}
        initializer {{
          truncated_normal_initializer {{
            stddev: 0.03
            mean: 0.0
          }}
        }}
        batch_norm {{
          scale: true,
          decay: 0.997,
          epsilon: 0.001,
        }}
      }}
      override_base_feature_extractor_hyperparams: true
    }}
    loss {{
      classification_loss {{
        weighted_sigmoid_focal {{
          alpha: 0.25
          gamma: 2.0
        }}
      }}
      localization_loss {{
        weighted_smooth_l1 {{
        }}
      }}
      classification_weight: 1.0
      localization_weight: 1.0
    }}
    normalize_loss_by_num_matches: true
    normalize_loc_loss_by_codesize: true
    post_processing {{
      batch_non_max_suppression {{
        score_threshold: 1e-8
        iou_threshold: 0.6
        max_detections_per_class: 100
        max_total_detections: 100
      }}
      score_converter: SIGMOID
    }}
  }}
}}

train_config: {{
  batch_size: 16
  num_steps: 90000
  # On TPUs set use_bfloat16: true (keep a fixed-shape or padded resizer).
  use_bfloat16: false
  optimizer {{
    momentum_optimizer: {{
      learning_rate: {{
        cosine_decay_learning_rate {{
          learning_rate_base: 0.01
          total_steps: 90000
          warmup_learning_rate: 0.0033
          warmup_steps: 2000
        }}
      }}
      momentum_optimizer_value: 0.9
    }}
    use_moving_average: false
  }}
  fine_tune_checkpoint_version: V2
  fine_tune_checkpoint: "PATH_TO_BE_CONFIGURED/{backbone}_imagenet/ckpt-0"
  fine_tune_checkpoint_type: "classification"
  data_augmentation_options {{
    random_horizontal_flip {{
    }}
  }}
  max_number_of_boxes: 100
  unpad_groundtruth_tensors: false
}}

train_input_reader: {{
  label_map_path: "PATH_TO_BE_CONFIGURED/label_map.pbtxt"
  tf_record_input_reader {{
    input_path: "PATH_TO_BE_CONFIGURED/train2017-?????-of-00100.tfrecord"
  }}
}}

eval_config: {{
  metrics_set: "coco_detection_metrics"
  use_moving_averages: false
  batch_size: 1
}}

eval_input_reader: {{
  label_map_path: "PATH_TO_BE_CONFIGURED/label_map.pbtxt"
  shuffle: false
  num_epochs: 1
  tf_record_input_reader {{
    input_path: "PATH_TO_BE_CONFIGURED/val2017-?????-of-00050.tfrecord"
  }}
}}
{gc_block}"""

_FIXED_640 = """\
      fixed_shape_resizer {
        height: 640
        width: 640
      }"""

_KEEP_ASPECT_600_1024 = """\
      keep_aspect_ratio_resizer {
        min_dimension: 600
        max_dimension: 1024
        pad_to_max_dimension: true
      }"""


def _gc_block(layers, heads, training_phases=''):
  return ('\n# The global-context module (protos/global_context.proto documents '
          'every field).\n[gc_detection.protos.global_context] {\n'
          f'  num_heads: {heads}\n  num_layers: {layers}\n'
          '  bottleneck_ratio: 4\n  initialization: BOTTLENECK\n'
          f'{training_phases}}}\n')


@dataclasses.dataclass(frozen=True)
class RetinaNetConfig:
  """One RetinaNet config: name, backbone depth, GC or stock, input size."""
  filename: str
  depth: int
  with_gc: bool
  keep_aspect: bool
  paper_ap: str = ''

  def render(self):
    backbone = f'resnet{self.depth}'
    if self.with_gc:
      title = f'RetinaNet ResNet-{self.depth} FPN + global context (1 layer x 4 heads)'
      extractor = f'ssd_{backbone}_v1_fpn_gc'
    else:
      title = f'RetinaNet ResNet-{self.depth} FPN, stock OD API extractor (baseline)'
      extractor = f'ssd_{backbone}_v1_fpn_keras'
    resize_note = (
        'The paper\'s resize: min 600 / max 1024 keeping the aspect ratio (padded\n'
        '# to 1024x1024 so a batch has one shape).' if self.keep_aspect else
        'The OD API\'s standard 640x640 fixed resize.')
    return _RETINANET_TEMPLATE.format(
        title=title, description=self.paper_ap, resize_note=resize_note,
        resizer=_KEEP_ASPECT_600_1024 if self.keep_aspect else _FIXED_640,
        extractor=extractor, backbone=backbone,
        gc_block=_gc_block(1, 4) if self.with_gc else '')


def _retinanet(depth, with_gc, keep_aspect):
  size = '600x1024' if keep_aspect else '640x640'
  gc = '_gc' if with_gc else ''
  paper = {(50, False): 35.9, (50, True): 37.3, (101, False): 37.5,
           (101, True): 38.4}.get((depth, with_gc))
  return RetinaNetConfig(
      f'ssd_resnet{depth}_v1_fpn{gc}_{size}_coco.config', depth, with_gc,
      keep_aspect,
      paper_ap=(f'Paper Table 2: {paper} AP on COCO val2017.' if paper else
                'Not in the paper; same settings as R-50/101.'))


def _table3(layers, heads, ap):
  return FasterRcnnConfig(
      f'ablations/faster_rcnn_resnet50_v1_gc_{layers}x{heads}_600x1024_coco.config',
      50, (layers, heads),
      paper_ap=f'Paper Table 3 ablation, {layers} x {heads}: {ap} AP on COCO '
               'val2017 (R-50).')


CONFIGS = [
    FasterRcnnConfig('faster_rcnn_resnet50_v1_600x1024_coco.config', 50,
                     paper_ap='Paper Table 1 baseline: 30.1 AP on COCO val2017.'),
    FasterRcnnConfig('faster_rcnn_resnet101_v1_600x1024_coco.config', 101,
                     paper_ap='Paper Table 1 baseline: 33.9 AP on COCO val2017.'),
    FasterRcnnConfig('faster_rcnn_resnet50_v1_gc_600x1024_coco.config', 50, (1, 4),
                     paper_ap='Paper Table 1: 34.1 AP on COCO val2017 '
                              '(baseline 30.1).'),
    FasterRcnnConfig('faster_rcnn_resnet101_v1_gc_600x1024_coco.config', 101,
                     (1, 4), paper_ap='Paper Table 1: 35.9 AP on COCO val2017 '
                                      '(baseline 33.9).'),
    FasterRcnnConfig('faster_rcnn_resnet152_v1_gc_600x1024_coco.config', 152,
                     (1, 4), paper_ap='Not in the paper; same settings as R-50/101.'),
    FasterRcnnConfig('mask_rcnn_resnet50_v1_gc_600x1024_coco.config', 50, (1, 4),
                     with_masks=True,
                     paper_ap='Not in the paper: the Faster R-CNN + GC model with '
                              'the OD API\'s mask head.'),
] + [_retinanet(depth, with_gc, keep_aspect)
      for depth in (50, 101) for with_gc in (False, True)
      for keep_aspect in (False, True)] + [
          _retinanet(152, True, False), _retinanet(152, True, True)] + [
              _table3(*row) for row in (
    (1, 1, 33.1), (1, 2, 33.8), (1, 4, 34.1), (1, 8, 33.7), (1, 16, 33.5),
    (2, 2, 27.3), (2, 4, 31.7), (2, 8, 31.5), (2, 16, 32.2), (3, 16, 31.7))]


def write_all(output_dir):
  """Writes every config under output_dir; returns their paths."""
  paths = []
  for config in CONFIGS:
    path = os.path.join(output_dir, config.filename)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + '.tmp', 'w') as out:
      out.write(config.render())
    os.replace(path + '.tmp', path)
    paths.append(path)
  return paths


def _define_flags():
  """Defines the command-line flags; only when run as a program, so that
  importing this module next to other gc_detection tools cannot clash in
  absl's global flag registry."""
  global _OUTPUT_DIR  # pylint: disable=global-statement
  _OUTPUT_DIR = flags.DEFINE_string(
      'output_dir', os.path.join(_REPO_ROOT, 'pipeline_configs'),
      'Where the configs are written.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  for path in write_all(_OUTPUT_DIR.value):
    print(f'wrote {os.path.relpath(path)}')


if __name__ == '__main__':
  _define_flags()
  app.run(main)
