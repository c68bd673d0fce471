r"""Builds a detector and runs a few stock training steps on generated data.

A smoke test of the whole stack on a fresh machine: it generates a small
TFRecord of coloured rectangles, reads it through the OD API's own input
pipeline (`inputs.train_input`, the TfExampleDecoder), builds the model with
`model_builder`, and runs the stock `model_lib_v2.eager_train_step` N times.
`python -m gc_detection.cli.train_steps` prints every loss term per step and
exits non-zero if a loss is not finite.

Without a pipeline.config it trains DEFAULT_PIPELINE, built in: the shipped
Faster R-CNN ResNet-50 + global context (1 layer x 4 heads) at 256 x 256
px, so that a step takes seconds on a CPU and nothing outside the installed
package is needed.
"""
import os
import time

# The built-in model: pipeline_configs/faster_rcnn_resnet50_v1_gc_600x1024_coco.config
# (the paper's Faster R-CNN R-50 + GC) at 256 x 256 px (no padding to 1024),
# Adam without the second phase, GLOROT start (BOTTLENECK needs the pretrained
# ResNet, which a smoke test does not load). Data paths and num_classes are
# set to the generated data by load_configs.
DEFAULT_PIPELINE_NAME = 'built-in Faster R-CNN ResNet-50 + GC at 256 x 256 px'
DEFAULT_PIPELINE = """\
model {
  faster_rcnn {
    num_classes: 2
    image_resizer { fixed_shape_resizer { height: 256 width: 256 } }
    feature_extractor { type: 'faster_rcnn_resnet50_gc' batch_norm_trainable: false }
    first_stage_anchor_generator {
      grid_anchor_generator {
        scales: [0.25, 0.5, 1.0, 2.0] aspect_ratios: [0.5, 1.0, 2.0]
        height_stride: 16 width_stride: 16
      }
    }
    first_stage_box_predictor_conv_hyperparams {
      op: CONV
      regularizer { l2_regularizer { weight: 0.0 } }
      initializer { truncated_normal_initializer { stddev: 0.01 } }
    }
    first_stage_nms_score_threshold: 0.0
    first_stage_nms_iou_threshold: 0.7
    first_stage_max_proposals: 300
    first_stage_localization_loss_weight: 2.0
    first_stage_objectness_loss_weight: 1.0
    initial_crop_size: 14
    maxpool_kernel_size: 2
    maxpool_stride: 2
    second_stage_box_predictor {
      mask_rcnn_box_predictor {
        use_dropout: false
        dropout_keep_probability: 1.0
        fc_hyperparams {
          op: FC
          regularizer { l2_regularizer { weight: 0.0 } }
          initializer { variance_scaling_initializer { factor: 1.0 uniform: true mode: FAN_AVG } }
        }
        share_box_across_classes: true
      }
    }
    second_stage_post_processing {
      batch_non_max_suppression {
        score_threshold: 0.0 iou_threshold: 0.6
        max_detections_per_class: 100 max_total_detections: 300
      }
      score_converter: SOFTMAX
    }
    second_stage_localization_loss_weight: 2.0
    second_stage_classification_loss_weight: 1.0
    use_static_shapes: true
    use_matmul_crop_and_resize: true
    clip_anchors_to_image: true
    use_static_balanced_label_sampler: true
    use_matmul_gather_in_matcher: true
  }
}
train_config {
  batch_size: 1
  num_steps: 1
  optimizer {
    adam_optimizer { learning_rate { constant_learning_rate { learning_rate: 0.0001 } } }
    use_moving_average: false
  }
  max_number_of_boxes: 100
  unpad_groundtruth_tensors: false
}
train_input_reader {
  label_map_path: "label_map.pbtxt"
  tf_record_input_reader { input_path: "shapes.tfrecord" }
}
[gc_detection.protos.global_context] {
  num_heads: 4
  num_layers: 1
  bottleneck_ratio: 4
  initialization: GLOROT
}
"""


def write_shapes_dataset(work_dir, seed, num_images):
  """Writes shapes.tfrecord and label_map.pbtxt; returns their paths."""
  from gc_detection.data import shapes  # pylint: disable=g-import-not-at-top
  from gc_detection import atomic_files  # pylint: disable=g-import-not-at-top
  from gc_detection.data import tf_example  # pylint: disable=g-import-not-at-top

  record_path = os.path.join(work_dir, 'shapes.tfrecord')
  label_map_path = os.path.join(work_dir, 'label_map.pbtxt')
  tf_example.write_tfrecord(record_path, shapes.generate(seed, num_images))
  atomic_files.write_text(
      label_map_path, tf_example.label_map_text(shapes.SHAPE_COLOURS))
  return record_path, label_map_path


def load_configs(pipeline_config_path, record_path, label_map_path, num_classes):
  """Reads a pipeline.config (None: DEFAULT_PIPELINE) and points its training
  input at the generated data.

  Raises:
    pipeline_files.PipelineConfigError: the file is missing or does not parse
      (the message names it).
  """
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  from object_detection.protos import pipeline_pb2  # pylint: disable=g-import-not-at-top
  from object_detection.utils import config_util  # pylint: disable=g-import-not-at-top
  from gc_detection.protos import global_context_pb2  # pylint: disable=g-import-not-at-top,unused-import

  if pipeline_config_path:
    configs = config_util.get_configs_from_pipeline_file(pipeline_config_path)
  else:
    configs = config_util.create_configs_from_pipeline_proto(text_format.Parse(
        DEFAULT_PIPELINE, pipeline_pb2.TrainEvalPipelineConfig()))
  configs = config_util.merge_external_params_with_configs(configs, kwargs_dict={
      'train_input_path': record_path,
      'label_map_path': label_map_path,
      'batch_size': 1,
      'num_classes': num_classes,
  })
  # The generated images in the order they were written.
  configs['train_input_config'].shuffle = False
  return configs


def train_steps(configs, num_steps, seed):
  """Builds the model and runs `num_steps` stock training steps.

  Returns:
    One dict per step: loss name -> float value.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from object_detection import inputs  # pylint: disable=g-import-not-at-top
  from object_detection import model_lib_v2  # pylint: disable=g-import-not-at-top
  from object_detection.builders import model_builder  # pylint: disable=g-import-not-at-top
  from object_detection.builders import optimizer_builder  # pylint: disable=g-import-not-at-top

  tf.keras.utils.set_random_seed(seed)
  train_config = configs['train_config']
  model = model_builder.build(configs['model'], is_training=True)
  dataset = inputs.train_input(
      train_config, configs['train_input_config'], configs['model'], model=model)
  optimizer, _ = optimizer_builder.build(train_config.optimizer)
  extractor = getattr(model, '_feature_extractor', None)
  if hasattr(extractor, 'gc_settings'):
    print(f'global context: {extractor.gc_settings}', flush=True)
  history = []
  for step, (features, labels) in enumerate(dataset.take(num_steps), start=1):
    started = time.perf_counter()
    losses = model_lib_v2.eager_train_step(
        model, features, labels,
        unpad_groundtruth_tensors=train_config.unpad_groundtruth_tensors,
        optimizer=optimizer,
        training_step=optimizer.iterations,
        add_regularization_loss=train_config.add_regularization_loss)
    seconds = time.perf_counter() - started
    values = {name: float(value) for name, value in losses.items()}
    history.append(values)
    terms = ', '.join(f'{name.split("/", 1)[-1]}={value:.4f}'
                      for name, value in sorted(values.items()))
    print(f'step {step}: {terms} ({seconds:.1f} s)', flush=True)
  return history

