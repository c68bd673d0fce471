r"""The far-cue dataset's pipeline configs: stock Faster R-CNN R-50 and the same + GC.

Both are derived from the shipped paper configs
(pipeline_configs/faster_rcnn_resnet50_v1{,_gc}_600x1024_coco.config) by one
function, `apply_far_cue_settings`, applied to each alike; so the pair differs
only in the feature extractor's type and the gc_detection extension
([gc_detection.protos.global_context]; a test checks this). The settings make a 256 px, 3-class dataset
train on a CPU: anchors for 16-64 px objects, 32 proposals, 16 box-classifier
samples per image, 8 px crops, Adam at a constant rate, no
fine_tune_checkpoint (random weights: pretrained ones cannot be downloaded
everywhere); the extension starts the module as the identity (ZERO_OUTPUT).

dev/write_far_cue_configs.py writes pipeline_configs/far_cue/*.config (paths
relative to the checkout, pointing at data/far_cue/ as scripts/demo.sh writes
it).
"""
import os

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STOCK_SOURCE = 'faster_rcnn_resnet50_v1_600x1024_coco.config'
GC_SOURCE = 'faster_rcnn_resnet50_v1_gc_600x1024_coco.config'
# name in pipeline_configs/far_cue -> source config in pipeline_configs.
CONFIGS = {'faster_rcnn_resnet50_far_cue.config': STOCK_SOURCE,
           'faster_rcnn_resnet50_gc_far_cue.config': GC_SOURCE}
DEFAULT_DATA_DIR = 'data/far_cue'
NUM_CLASSES = 3
SIZE = 256
BATCH_SIZE = 4
NUM_STEPS = 600
LEARNING_RATE = 3e-4


def apply_far_cue_settings(configs, data_dir=DEFAULT_DATA_DIR, num_steps=NUM_STEPS,
                           batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE):
  """Edits a Faster R-CNN configs dict (config_util's) in place for the far-cue data.

  Args:
    configs: the dict of config_util.get_configs_from_pipeline_file.
    data_dir: holds train.tfrecord, val.tfrecord and label_map.pbtxt.
    num_steps, batch_size, learning_rate: the training run (Adam, constant
      rate after a 50-step linear warm-up).

  Returns:
    configs.
  """
  from gc_detection.od_api import config_edits  # pylint: disable=g-import-not-at-top

  model = configs['model']
  frcnn = model.faster_rcnn
  frcnn.num_classes = NUM_CLASSES
  config_edits.set_square_input(model, SIZE)
  anchors = frcnn.first_stage_anchor_generator.grid_anchor_generator
  anchors.ClearField('scales')
  anchors.scales.extend([0.0625, 0.125, 0.25])  # x 256 px base: 16, 32, 64 px
  anchors.ClearField('aspect_ratios')
  anchors.aspect_ratios.append(1.0)  # disks
  frcnn.first_stage_max_proposals = 32
  frcnn.second_stage_batch_size = 16
  # 8 x 8 crops (stock: 14 x 14) of a 20-34 px object, 2 x 2 C4 cells: the same
  # information at a quarter of the box classifier's work (25% faster steps).
  frcnn.initial_crop_size = 8
  nms = frcnn.second_stage_post_processing.batch_non_max_suppression
  nms.max_detections_per_class = 10
  nms.max_total_detections = 20

  train = configs['train_config']
  train.batch_size = batch_size
  train.num_steps = num_steps
  train.ClearField('fine_tune_checkpoint')
  train.ClearField('fine_tune_checkpoint_type')
  train.max_number_of_boxes = 4
  optimizer = train.optimizer
  optimizer.Clear()
  rate = optimizer.adam_optimizer.learning_rate.manual_step_learning_rate
  rate.initial_learning_rate = learning_rate / 10
  rate.warmup = True
  rate.schedule.add(step=50, learning_rate=learning_rate)
  optimizer.use_moving_average = False

  for reader, split in ((configs['train_input_config'], 'train'),
                        (configs['eval_input_config'], 'val')):
    reader.label_map_path = os.path.join(data_dir, 'label_map.pbtxt')
    reader.tf_record_input_reader.ClearField('input_path')
    reader.tf_record_input_reader.input_path.append(
        os.path.join(data_dir, f'{split}.tfrecord'))
  # Not include_metrics_per_category: the stock evaluator then needs a
  # pycocotools fork with category_stats ("Category stats do not exist");
  # gc_detection.cli.evaluate_every_checkpoint reports AP per class instead.
  configs['eval_config'].max_num_boxes_to_visualize = 4
  return configs


def far_cue_gc_extension(extension):
  """Edits a GlobalContext extension in place: one phase (the Adam above), ZERO_OUTPUT start.

  BOTTLENECK initialisation needs a pretrained ResNet, which this run does not
  start from (without a fine_tune_checkpoint it would keep the GLOROT start).
  ZERO_OUTPUT starts the module as the identity, so the GC model starts as
  the stock one; measured on this data (600 steps, one seed), GLOROT reached
  14 AP and ZERO_OUTPUT 28: the random attention output added to every C4
  cell held back localisation (class-agnostic AP 12 vs 26).
  """
  extension.ClearField('training_phases')
  extension.initialization = extension.ZERO_OUTPUT
  return extension


def pipeline_for(source_config, **settings):
  """The TrainEvalPipelineConfig of the far-cue run derived from a shipped config."""
  from object_detection.utils import config_util  # pylint: disable=g-import-not-at-top
  from gc_detection.protos import global_context_pb2  # pylint: disable=g-import-not-at-top

  configs = config_util.get_configs_from_pipeline_file(
      os.path.join(_REPO_ROOT, 'pipeline_configs', source_config))
  apply_far_cue_settings(configs, **settings)
  pipeline = config_util.create_pipeline_proto_from_configs(configs)
  if pipeline.HasExtension(global_context_pb2.global_context):
    far_cue_gc_extension(pipeline.Extensions[global_context_pb2.global_context])
  return pipeline


def render(source_config, title, **settings):
  """The config file text: a comment header and the pipeline in text format."""
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  header = (f'# {title}\n#\n# The far-cue dataset (gc_detection.data.far_cue_scenes; '
            'scripts/demo.sh writes it\n# to data/far_cue). Derived from '
            f'pipeline_configs/{source_config} by\n# dev/far_cue_configs.py '
            '(same edits for the stock and the GC\n# model). Paths are relative to the '
            'checkout root.\n\n')
  return header + text_format.MessageToString(pipeline_for(source_config, **settings))


def write_all(output_dir, **settings):
  """Writes both configs into output_dir; returns {name: path}."""
  from gc_detection import atomic_files  # pylint: disable=g-import-not-at-top
  titles = {STOCK_SOURCE: 'Faster R-CNN ResNet-50, stock extractor, on the far-cue dataset',
            GC_SOURCE: 'Faster R-CNN ResNet-50 + global context, on the far-cue dataset'}
  paths = {}
  for name, source in CONFIGS.items():
    paths[name] = os.path.join(output_dir, name)
    atomic_files.write_text(paths[name], render(source, titles[source], **settings))
  return paths

