"""The GlobalContext extension of TrainEvalPipelineConfig: compile and parse."""
import os
import shutil

from google.protobuf import text_format
from object_detection.protos import pipeline_pb2
from object_detection.utils import config_util
import pytest

from conftest import BASELINE_CONFIG
from conftest import REPO_ROOT
from conftest import run_python
from gc_detection.protos import global_context_pb2
from gc_detection.tools import compile_protos

GC_BLOCK = """
[gc_detection.protos.global_context] {
  num_heads: 8
  num_layers: 2
  bottleneck_ratio: 2
}
"""


def _parse(text):
  return text_format.Parse(text, pipeline_pb2.TrainEvalPipelineConfig())


def test_a_pipeline_config_with_the_block_parses_and_reads_back():
  pipeline_text = open(BASELINE_CONFIG).read() + GC_BLOCK
  pipeline = _parse(pipeline_text)
  settings = pipeline.Extensions[global_context_pb2.global_context]
  assert (settings.num_heads, settings.num_layers, settings.bottleneck_ratio) == (
      8, 2, 2)
  # The rest of the pipeline is untouched by the extension.
  assert pipeline.model.faster_rcnn.feature_extractor.type == (
      'faster_rcnn_resnet50_keras')
  # And it survives the text and binary round trips the OD API performs.
  reparsed = _parse(text_format.MessageToString(pipeline))
  assert reparsed == pipeline
  assert pipeline_pb2.TrainEvalPipelineConfig.FromString(
      pipeline.SerializeToString()) == pipeline


def test_the_stock_config_reader_accepts_the_block(tmp_path):
  path = tmp_path / 'pipeline.config'
  path.write_text(open(BASELINE_CONFIG).read().replace(
      'faster_rcnn_resnet50_keras', 'faster_rcnn_resnet50_gc') + GC_BLOCK)
  configs = config_util.get_configs_from_pipeline_file(str(path))
  assert configs['model'].faster_rcnn.num_classes == 90


def test_an_absent_block_means_the_paper_defaults():
  pipeline = _parse(open(BASELINE_CONFIG).read())
  assert not pipeline.HasExtension(global_context_pb2.global_context)
  settings = pipeline.Extensions[global_context_pb2.global_context]
  assert (settings.num_heads, settings.num_layers, settings.bottleneck_ratio) == (
      4, 1, 4)


def test_an_unknown_field_is_named_in_the_error():
  with pytest.raises(text_format.ParseError, match='num_hedas'):
    _parse('[gc_detection.protos.global_context] { num_hedas: 4 }')


def test_a_mistyped_value_is_named_in_the_error():
  with pytest.raises(text_format.ParseError, match='num_heads'):
    _parse('[gc_detection.protos.global_context] { num_heads: "four" }')


def test_without_the_generated_module_the_extension_is_unknown():
  # Text parsing only knows extensions whose module was imported: this is why
  # gc_detection must be imported (registered) before a config is read.
  result = run_python(
      'from google.protobuf import text_format\n'
      'from object_detection.protos import pipeline_pb2\n'
      'text_format.Parse("[gc_detection.protos.global_context] { num_heads: 4 }",'
      ' pipeline_pb2.TrainEvalPipelineConfig())\n')
  assert result.returncode != 0
  assert 'gc_detection.protos.global_context' in result.stderr


def test_recompiling_reproduces_the_installed_module(tmp_path):
  written = compile_protos.compile_protos(
      os.path.join(REPO_ROOT, 'protos'), str(tmp_path))
  assert [os.path.basename(p) for p in written] == ['global_context_pb2.py']
  installed = open(global_context_pb2.__file__).read()
  assert open(written[0]).read() == installed


def test_the_descriptor_set_holds_pipeline_proto_and_its_imports():
  names = [f.name for f in compile_protos.od_api_descriptor_set().file]
  assert names[-1] == 'object_detection/protos/pipeline.proto'
  assert 'object_detection/protos/model.proto' in names
  assert names.index('object_detection/protos/model.proto') < len(names) - 1
  assert len(names) == len(set(names))


def test_a_broken_proto_fails_loudly_and_writes_nothing(tmp_path):
  proto_dir = tmp_path / 'protos'
  proto_dir.mkdir()
  shutil.copy(os.path.join(REPO_ROOT, 'protos', 'global_context.proto'), proto_dir)
  (proto_dir / 'broken.proto').write_text(
      'syntax = "proto2";\npackage gc_detection.protos;\n'
      'message Broken { optional NoSuchType field = 1; }\n')
  output_root = tmp_path / 'out'
  with pytest.raises(RuntimeError, match='protoc failed'):
    compile_protos.compile_protos(str(proto_dir), str(output_root))
  assert not output_root.exists() or not any(output_root.rglob('*_pb2.py'))
