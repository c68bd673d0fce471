"""The RetinaNet (SSD ResNet-FPN) pipeline.config template of pipeline_configs/.

dev/shipped_configs.py lists the configs; dev/write_pipeline_configs.py writes them.
"""
import dataclasses

from faster_rcnn_configs import gc_extension_text  # dev/, beside this module

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
# dev/write_pipeline_configs.py; edit freely.

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
{gc_extension}"""

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
        gc_extension=gc_extension_text(1, 4) if self.with_gc else '')
