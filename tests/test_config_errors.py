"""Bad pipeline.config files and label maps: one line that names the file.

Before (issue 17), through scripts/train.sh: a misspelt GC field gave a
30-line traceback from training_phases ending in a bare `ParseError: 141:3`;
an empty config `TypeError: attribute name must be string, not 'NoneType'`;
a binary file `UnicodeDecodeError`; two GC blocks were silently merged (the
second's values won); a garbage label map said `expected bytes, str found`.
Every entry point now reads pipeline.config through
gc_detection.od_api.pipeline_files.read_pipeline.
"""
import os

from object_detection.utils import config_util
import pytest

from conftest import run_script
import tiny_configs
from gc_detection.od_api import pipeline_files
from gc_detection.od_api.training import preflight

BLOCK = '[gc_detection.protos.global_context]'


@pytest.fixture(scope='module')
def good_config(tmp_path_factory):
  """A valid tiny GC training pipeline.config (path) and its text."""
  path = tiny_configs.faster_rcnn_gc_training_config(
      tmp_path_factory.mktemp('config'), '', learning_rate=1e-4)
  return path, open(path).read()


def _write(tmp_path, name, text):
  path = tmp_path / name
  if isinstance(text, bytes):
    path.write_bytes(text)
  else:
    path.write_text(text)
  return str(path)


def _misspelt(text):
  """The text with `num_heads` in the GC block misspelt; (text, its line)."""
  text = text.replace('num_heads:', 'num_headz:', 1)
  line = text[:text.index('num_headz')].count('\n') + 1
  return text, line


def test_a_misspelt_gc_field_names_file_line_and_field(good_config, tmp_path):
  text, line = _misspelt(good_config[1])
  path = _write(tmp_path, 'typo.config', text)
  with pytest.raises(pipeline_files.PipelineConfigError) as raised:
    pipeline_files.read_pipeline(path)
  message = str(raised.value)
  assert message.startswith(f'{path}:{line}:'), message
  assert 'num_headz' in message


def test_binary_directory_and_missing_files_are_named(tmp_path):
  binary = _write(tmp_path, 'model.ckpt', bytes(range(256)) * 4)
  cases = [(binary, 'not a text file (byte 128 is not UTF-8)'),
           (str(tmp_path), 'is a directory'),
           (str(tmp_path / 'absent.config'), 'no such file')]
  for path, expected in cases:
    with pytest.raises(pipeline_files.PipelineConfigError) as raised:
      pipeline_files.read_pipeline(path)
    assert str(raised.value).startswith(f'{path}: '), raised.value
    assert expected in str(raised.value)


def test_two_gc_extensions_are_refused_not_merged(good_config, tmp_path):
  text = good_config[1]
  first = text[:text.index(BLOCK)].count('\n') + 1
  doubled = text + f'\n# a comment naming {BLOCK} is no block\n{BLOCK} {{ num_heads: 2 }}\n'
  second = doubled.count('\n')
  path = _write(tmp_path, 'two.config', doubled)
  with pytest.raises(pipeline_files.PipelineConfigError) as raised:
    pipeline_files.read_pipeline(path)
  assert str(raised.value).startswith(f'{path}:{second}: a second {BLOCK} extension '
                                      f'(the first starts at line {first})')
  # The OD API's own reader goes through the same check.
  with pytest.raises(pipeline_files.PipelineConfigError, match='a second'):
    config_util.get_configs_from_pipeline_file(path)


def test_an_empty_config_is_named_by_preflight(tmp_path):
  path = _write(tmp_path, 'empty.config', '')
  configs = config_util.get_configs_from_pipeline_file(path)
  with pytest.raises(preflight.PipelineFileError,
                     match=r'^model: pipeline.config defines no model .*is the file empty\?'):
    preflight.check_training_pipeline(configs)


def test_a_garbage_label_map_gives_the_parsers_reason(good_config, tmp_path):
  configs = config_util.get_configs_from_pipeline_file(good_config[0])
  garbage = _write(tmp_path, 'label_map.pbtxt', 'item { id: 1 name: "a" }\n%%% nonsense\n')
  configs['train_input_config'].label_map_path = garbage
  with pytest.raises(preflight.PipelineFileError) as raised:
    preflight.check_training_pipeline(configs)
  message = str(raised.value)
  assert message.startswith(f"train_input_reader.label_map_path: '{garbage}' is not a "
                            'valid StringIntLabelMap text proto: 2:1')
  assert 'expected bytes' not in message


def _one_line_error(result):
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert result.returncode != 0
  assert 'Traceback' not in result.stderr, result.stderr[-3000:]
  return lines[-1]


def test_train_sh_prints_each_bad_config_as_one_line(good_config, tmp_path):
  text, line = _misspelt(good_config[1])
  cases = {
      'typo.config': (text, f':{line}:'),
      'binary.config': (bytes(range(256)), 'not a text file'),
      'two.config': (good_config[1] + f'\n{BLOCK} {{ num_heads: 2 }}\n', 'a second'),
      'empty.config': ('', 'PipelineFileError: model: pipeline.config defines no model'),
  }
  for name, (content, expected) in cases.items():
    path = _write(tmp_path, name, content)
    result = run_script('train.sh', f'--pipeline_config_path={path}',
                        f'--model_dir={tmp_path / "model"}', timeout=300)
    last = _one_line_error(result)
    assert path in last or name == 'empty.config', (name, last)
    assert expected in last, (name, last)
  assert not os.path.exists(tmp_path / 'model' / 'checkpoint')


def test_export_sh_names_a_bad_config(good_config, tmp_path):
  text, line = _misspelt(good_config[1])
  path = _write(tmp_path, 'typo.config', text)
  (tmp_path / 'model').mkdir()
  (tmp_path / 'model' / 'checkpoint').write_text('model_checkpoint_path: "ckpt-1"\n')
  result = run_script('export.sh', f'--pipeline_config_path={path}',
                      f'--trained_checkpoint_dir={tmp_path / "model"}',
                      f'--output_directory={tmp_path / "exported"}', timeout=300)
  assert result.returncode == 2
  assert _one_line_error(result).startswith(
      f'export.sh: --pipeline_config_path: {path}:{line}:')
  assert not os.path.exists(tmp_path / 'exported')
