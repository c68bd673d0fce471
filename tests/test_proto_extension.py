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
import proto_compiler  # dev/ (tests/conftest.py)

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


# The OD API tutorials' idiom for reading a config by hand.
_TUTORIAL_PARSE = (
    'from google.protobuf import text_format\n'
    'from object_detection.protos import pipeline_pb2\n'
    'pipeline = text_format.Merge("[gc_detection.protos.global_context] '
    '{ num_heads: 8 }", pipeline_pb2.TrainEvalPipelineConfig())\n'
    'print(pipeline)\n')


def test_without_gc_detection_the_extension_is_unknown():
  # The control: text parsing only knows extensions whose module was imported.
  result = run_python(_TUTORIAL_PARSE, env={'GC_DETECTION_AUTOREGISTER': '0'})
  assert result.returncode != 0
  assert 'Extension "gc_detection.protos.global_context" not registered' in result.stderr


@pytest.mark.parametrize('prelude, autoregister', [
    ('', '1'),  # the start-up hook, on importing pipeline_pb2
    ('import gc_detection\n', '0'),  # importing gc_detection first
    ('from object_detection.protos import pipeline_pb2\nimport gc_detection\n', '0'),
])
def test_the_tutorial_parse_of_a_gc_config_works_in_a_fresh_process(prelude, autoregister):
  """Before: `Extension "gc_detection.protos.global_context" not registered`
  unless some OD API module such as config_util had been imported."""
  result = run_python(prelude + _TUTORIAL_PARSE,
                      env={'GC_DETECTION_AUTOREGISTER': autoregister})
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'num_heads: 8' in result.stdout
  # Cheap: neither way imports TensorFlow.
  check = run_python(prelude + _TUTORIAL_PARSE +
                     'import sys; print("tensorflow" in sys.modules)\n',
                     env={'GC_DETECTION_AUTOREGISTER': autoregister})
  assert check.stdout.strip().endswith('False'), check.stdout


def test_recompiling_reproduces_the_installed_module(tmp_path):
  written = proto_compiler.compile_protos(
      os.path.join(REPO_ROOT, 'protos'), str(tmp_path))
  assert [os.path.basename(p) for p in written] == ['global_context_pb2.py']
  installed = open(global_context_pb2.__file__).read()
  assert open(written[0]).read() == installed


def test_the_descriptor_set_holds_pipeline_proto_and_its_imports():
  names = [f.name for f in proto_compiler.od_api_descriptor_set().file]
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
    proto_compiler.compile_protos(str(proto_dir), str(output_root))
  assert not output_root.exists() or not any(output_root.rglob('*_pb2.py'))
