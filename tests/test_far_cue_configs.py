"""pipeline_configs/far_cue: committed as generated, and a pair that differs only by GC."""
import os

from google.protobuf import text_format
from object_detection.protos import pipeline_pb2

from conftest import REPO_ROOT
import gc_detection
import far_cue_configs  # dev/ (tests/conftest.py)

FAR_CUE_DIR = os.path.join(REPO_ROOT, 'pipeline_configs', 'far_cue')


def _parse(path):
  gc_detection.register()  # the [gc_detection.protos.global_context] extension
  with open(path) as config:
    return text_format.Parse(config.read(), pipeline_pb2.TrainEvalPipelineConfig())


def test_committed_configs_are_the_generated_ones(tmp_path):
  written = far_cue_configs.write_all(str(tmp_path))
  for name, path in written.items():
    with open(path) as fresh, open(os.path.join(FAR_CUE_DIR, name)) as committed:
      assert committed.read() == fresh.read(), (
          f'{name} is stale: run python dev/write_far_cue_configs.py')


def test_the_pair_differs_only_in_extractor_type_and_gc_block():
  from gc_detection.protos import global_context_pb2  # pylint: disable=g-import-not-at-top
  stock = _parse(os.path.join(FAR_CUE_DIR, 'faster_rcnn_resnet50_far_cue.config'))
  gc = _parse(os.path.join(FAR_CUE_DIR, 'faster_rcnn_resnet50_gc_far_cue.config'))
  assert stock.model.faster_rcnn.feature_extractor.type == 'faster_rcnn_resnet50_keras'
  assert gc.model.faster_rcnn.feature_extractor.type == 'faster_rcnn_resnet50_gc'
  assert not stock.HasExtension(global_context_pb2.global_context)
  block = gc.Extensions[global_context_pb2.global_context]
  assert block.initialization == block.ZERO_OUTPUT and not block.HasField('training_phases')
  gc.ClearExtension(global_context_pb2.global_context)
  gc.model.faster_rcnn.feature_extractor.type = 'faster_rcnn_resnet50_keras'
  assert text_format.MessageToString(gc) == text_format.MessageToString(stock)
  # What makes the run CPU-sized, and what the data needs.
  assert stock.model.faster_rcnn.num_classes == 3
  assert stock.train_config.optimizer.WhichOneof('optimizer') == 'adam_optimizer'
  assert not stock.train_config.fine_tune_checkpoint
  assert list(stock.train_input_reader.tf_record_input_reader.input_path) == [
      'data/far_cue/train.tfrecord']
