"""Bad pipeline.configs fail early with an error that names the field or file.

Property-based: hypothesis writes GC blocks with valid, out-of-range, missing
and mistyped values; an oracle written here from the .proto's documented
ranges says which fields are bad. Every block must either build a model that
runs, or raise a ValueError naming one of its bad fields. Then the files a
training run needs: TFRecords, label map, fine_tune_checkpoint.
"""
import math
import os

from hypothesis import event
from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
from object_detection.builders import model_builder
from object_detection.utils import config_util
import pytest
import tensorflow as tf

from conftest import run_script
import tiny_configs
from gc_detection import atomic_files
from gc_detection.od_api import extension_settings
from gc_detection.data import shapes
from gc_detection.data import tf_example
from gc_detection.od_api.training import preflight

CHANNELS = 1024  # Faster R-CNN's C4, where the module sits
SOURCE_BLOCKS = [f'conv4_block{i}' for i in range(2, 7)]  # ResNet-50 conv4
PARSE_ERROR = object()  # a token text_format must refuse
SIZE = 64

# (token, value) pairs per kind: value PARSE_ERROR for tokens that are not a
# value of that kind in protobuf's text format.
_INT_TYPOS = ['abc', '2.5', '"4"', 'true', '', '99999999999', '1e3']
_FLOAT_TYPOS = ['abc', '"0.1"', '', 'true']
_BOOL_TYPOS = ['maybe', '2', '"true"', '']
_ENUM_TYPOS = ['FOO', '"BOTTLENECK"', '7', '', 'glorot']
_STRING_TYPOS = ['conv4_block3', '5', '']


def _typo(tokens):
  return st.sampled_from(tokens).map(lambda token: (token, PARSE_ERROR))


def _ints(low, high):
  return st.integers(low, high).map(lambda value: (str(value), value))


FIELDS = {
    'num_heads': st.one_of(_ints(-2, 9), _ints(10, 2**31 - 1), _typo(_INT_TYPOS)),
    'num_layers': st.one_of(_ints(-1, 3), _ints(17, 2**31 - 1), _typo(_INT_TYPOS)),
    'bottleneck_ratio': st.one_of(_ints(-1, 9), _ints(1024, 4096), _typo(_INT_TYPOS)),
    'use_residual': st.one_of(st.sampled_from([('true', True), ('false', False)]),
                              _typo(_BOOL_TYPOS)),
    'attention_dropout': st.one_of(
        # The field is a float32: the oracle sees the value the parser stores.
        st.floats(-1.0, 2.0, allow_nan=False).map(
            lambda value: (repr(value), float(np.float32(value)))),
        st.sampled_from([('nan', math.nan), ('inf', math.inf)]), _typo(_FLOAT_TYPOS)),
    'chunk_threshold': st.one_of(_ints(-5, 10**6), _typo(_INT_TYPOS)),
    'chunk_size': st.one_of(_ints(-5, 70000), _typo(_INT_TYPOS)),
    'initialization': st.one_of(
        st.sampled_from([('BOTTLENECK', 'BOTTLENECK'), ('GLOROT', 'GLOROT'),
                         ('ZERO_OUTPUT', 'ZERO_OUTPUT'), ('1', 'GLOROT')]),
        _typo(_ENUM_TYPOS)),
    'source_block': st.one_of(
        st.sampled_from(SOURCE_BLOCKS + ['conv4_block1', 'conv4_block7', 'conv3_block2',
                                         'nonsense', '']).map(
                                             lambda name: (f'"{name}"', name)),
        _typo(_STRING_TYPOS)),
}
DEFAULTS = {'num_heads': 4, 'num_layers': 1, 'bottleneck_ratio': 4, 'use_residual': True,
            'attention_dropout': 0.0, 'chunk_threshold': 4096, 'chunk_size': 1024,
            'initialization': 'BOTTLENECK', 'source_block': ''}


def bad_fields(values):
  """The fields of a block (values: field -> value) that must be reported.

  Written from protos/global_context.proto's documentation, not from the code.
  """
  bad = {field for field, value in values.items() if value is PARSE_ERROR}
  if bad:
    return bad  # the parser stops at the first; any of them may be named
  value = dict(DEFAULTS, **values)
  for field in ('num_heads', 'num_layers', 'bottleneck_ratio', 'chunk_size'):
    if value[field] <= 0:
      bad.add(field)
  if value['num_layers'] > 16:
    bad.add('num_layers')
  if value['chunk_size'] > 65536:
    bad.add('chunk_size')
  if value['chunk_threshold'] < 0:
    bad.add('chunk_threshold')
  if not 0.0 <= value['attention_dropout'] < 1.0:
    bad.add('attention_dropout')
  if bad:
    return bad
  if value['source_block'] not in SOURCE_BLOCKS + ['']:
    return {'source_block'}
  if value['initialization'] == 'BOTTLENECK' and value['bottleneck_ratio'] != 4:
    return {'bottleneck_ratio', 'initialization'}
  ratio, heads = value['bottleneck_ratio'], value['num_heads']
  if CHANNELS % ratio or (CHANNELS // ratio) % heads:
    return {'bottleneck_ratio', 'num_heads'}
  return set()


def _config_text(block_lines):
  text = open(os.path.join(tiny_configs.CONFIG_DIR, tiny_configs.FRCNN_GC_R50)).read()
  start = text.index(extension_settings.EXTENSION_NAME)
  return text[:start] + extension_settings.EXTENSION_NAME + ' {\n' + ''.join(
      f'  {line}\n' for line in block_lines) + '}\n'


def _build_and_run(path):
  """Parses, builds (64 px) and runs the model of a config file."""
  configs = config_util.get_configs_from_pipeline_file(path)
  tiny_configs.set_square_input(configs['model'], SIZE)
  model = model_builder.build(configs['model'], is_training=False)
  image = tf.constant(np.random.default_rng(0).uniform(0, 255, (1, SIZE, SIZE, 3)),
                      tf.float32)
  outputs = model.predict(*model.preprocess(image))
  assert np.all(np.isfinite(outputs['rpn_objectness_predictions_with_background']))


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(st.lists(st.sampled_from(sorted(FIELDS)), min_size=1, max_size=3,
                unique=True).flatmap(
                    lambda names: st.tuples(*[FIELDS[name] for name in names]).map(
                        lambda drawn: dict(zip(names, drawn)))))
def test_every_gc_block_builds_or_names_a_bad_field(tmp_path_factory, block):
  path = str(tmp_path_factory.mktemp('config') / 'pipeline.config')
  with open(path, 'w') as config_file:
    config_file.write(_config_text([f'{field}: {token}'
                                    for field, (token, _) in block.items()]))
  expected_bad = bad_fields({field: value for field, (_, value) in block.items()})
  # Counts per kind: pytest --hypothesis-show-statistics
  if not expected_bad:
    event('valid block: built and ran')
    _build_and_run(path)
    return
  parse_error = any(value is PARSE_ERROR for _, value in block.values())
  event('bad block: ' + ('does not parse' if parse_error else 'value out of range'))
  with pytest.raises(ValueError) as raised:
    _build_and_run(path)
  message = str(raised.value)
  assert any(field in message for field in expected_bad), (
      f'{block}: "{message}" names none of {sorted(expected_bad)}')
  assert 'Traceback' not in message


@pytest.mark.parametrize('line,field', [('num_head: 4', 'num_head'),
                                        ('training_phases { first_phase_steps: x }',
                                         'first_phase_steps'),
                                        ('num_heads 4', 'num_heads')])
def test_parse_errors_name_file_line_and_field(tmp_path, line, field):
  path = str(tmp_path / 'pipeline.config')
  text = _config_text(['num_layers: 1', line])
  with open(path, 'w') as config_file:
    config_file.write(text)
  with pytest.raises(ValueError) as raised:
    config_util.get_configs_from_pipeline_file(path)
  message = str(raised.value)
  line_number = text.splitlines().index(f'  {line}') + 1
  assert message.startswith(f'{path}:{line_number}:') and field in message


# --- The files a training run reads -----------------------------------------------


def _training_configs(tmp_path, num_classes=None, label_ids=None):
  """A valid tiny training config: one TFRecord, a label map, no checkpoint."""
  record = str(tmp_path / 'train.tfrecord')
  tf_example.write_tfrecord(record, shapes.generate(seed=1, count=2, height=SIZE,
                                                    width=SIZE, max_boxes=1))
  label_map = str(tmp_path / 'label_map.pbtxt')
  ids = label_ids or range(1, len(shapes.SHAPE_COLOURS) + 1)
  atomic_files.write_text(label_map, ''.join(
      f'item {{ id: {i} name: "class{i}" }}\n' for i in ids))
  configs = tiny_configs.configs(tiny_configs.FRCNN_GC_R50, SIZE, tmp_path)
  configs = config_util.merge_external_params_with_configs(configs, kwargs_dict={
      'num_classes': num_classes or len(shapes.SHAPE_COLOURS),
      'train_input_path': record, 'eval_input_path': record,
      'label_map_path': label_map})
  configs['train_config'].ClearField('fine_tune_checkpoint')
  return configs


def test_a_valid_training_pipeline_passes(tmp_path):
  preflight.check_training_pipeline(_training_configs(tmp_path))


@pytest.mark.parametrize('pattern,expected', [
    ('missing-?????-of-00010.tfrecord', 'no file matches'),
    ('PATH_TO_BE_CONFIGURED/train.tfrecord', 'still holds PATH_TO_BE_CONFIGURED')])
def test_missing_tfrecords_are_named(tmp_path, pattern, expected):
  configs = _training_configs(tmp_path)
  reader = configs['train_input_config'].tf_record_input_reader
  reader.input_path[:] = [str(tmp_path / pattern)]
  with pytest.raises(preflight.PipelineFileError,
                     match=r'train_input_reader\.tf_record_input_reader\.input_path') as raised:
    preflight.check_training_pipeline(configs)
  assert expected in str(raised.value) and pattern in str(raised.value)


def test_fewer_tfrecord_shards_than_workers_is_named(tmp_path):
  configs = _training_configs(tmp_path)  # one TFRecord file
  preflight.check_training_pipeline(configs, num_input_pipelines=1)
  with pytest.raises(preflight.PipelineFileError,
                     match=r'input_path: 1 file\(s\) for 2 workers'):
    preflight.check_training_pipeline(configs, num_input_pipelines=2)


@pytest.mark.parametrize('num_classes,label_ids', [(3, [1, 2, 3, 4]), (5, [1, 2, 3])])
def test_a_label_map_that_does_not_fit_num_classes_is_named(tmp_path, num_classes,
                                                             label_ids):
  configs = _training_configs(tmp_path, num_classes, label_ids)
  with pytest.raises(preflight.PipelineFileError) as raised:
    preflight.check_training_pipeline(configs)
  message = str(raised.value)
  assert 'train_input_reader.label_map_path' in message
  assert 'largest class id' in message and f'is {max(label_ids)}' in message
  assert f'model.faster_rcnn.num_classes is {num_classes}' in message


def test_a_label_map_with_gaps_up_to_num_classes_passes(tmp_path):
  preflight.check_training_pipeline(_training_configs(tmp_path, 5, [1, 3, 5]))


def test_a_missing_or_broken_label_map_is_named(tmp_path):
  configs = _training_configs(tmp_path)
  reader = configs['train_input_config']
  reader.label_map_path = str(tmp_path / 'nowhere.pbtxt')
  with pytest.raises(preflight.PipelineFileError, match='does not exist'):
    preflight.check_training_pipeline(configs)
  broken = tmp_path / 'broken.pbtxt'
  broken.write_text('item { id: one }')
  reader.label_map_path = str(broken)
  with pytest.raises(preflight.PipelineFileError, match='not a valid StringIntLabelMap'):
    preflight.check_training_pipeline(configs)


def _fine_tune(configs, path, checkpoint_type):
  configs['train_config'].fine_tune_checkpoint = path
  configs['train_config'].fine_tune_checkpoint_type = checkpoint_type
  return configs


def test_fine_tune_checkpoint_errors_are_named(tmp_path):
  configs = _training_configs(tmp_path)
  weights = tf.Variable([1.0])
  detection = tf.train.Checkpoint(model=tf.train.Checkpoint(w=weights)).save(
      str(tmp_path / 'detection' / 'ckpt'))
  classification = tf.train.Checkpoint(
      feature_extractor=tf.train.Checkpoint(w=weights)).save(
          str(tmp_path / 'classification' / 'ckpt'))
  not_a_checkpoint = tmp_path / 'weights.h5'
  not_a_checkpoint.write_bytes(b'\x89HDF\r\n\x1a\n')
  cases = [
      (str(tmp_path / 'missing' / 'ckpt-0'), 'detection', 'not a readable TensorFlow'),
      (str(not_a_checkpoint), 'detection', 'not a readable TensorFlow'),
      (str(tmp_path / 'detection'), 'detection',
       f"is a directory; .*did you mean '{detection}'"),
      (classification, 'detection',
       'has no "model" object.*looks like a \'classification\' checkpoint'),
      (detection, 'classification',
       'has no "feature_extractor" object.*looks like a \'detection\' checkpoint'),
  ]
  for path, checkpoint_type, expected in cases:
    with pytest.raises(preflight.PipelineFileError,
                       match='train_config.fine_tune_checkpoint: .*' + expected):
      preflight.check_training_pipeline(_fine_tune(configs, path, checkpoint_type))
  preflight.check_training_pipeline(_fine_tune(configs, detection, 'detection'))
  preflight.check_training_pipeline(_fine_tune(configs, classification, 'classification'))


def test_stock_trainer_reports_a_missing_tfrecord_before_building(tmp_path):
  configs = _training_configs(tmp_path)
  configs['train_input_config'].tf_record_input_reader.input_path[:] = [
      str(tmp_path / 'gone.tfrecord')]
  config_util.save_pipeline_config(
      config_util.create_pipeline_proto_from_configs(configs), str(tmp_path))
  result = run_script('train.sh', f'--pipeline_config_path={tmp_path / "pipeline.config"}',
                      f'--model_dir={tmp_path / "model"}')
  assert result.returncode != 0
  assert ('PipelineFileError: train_input_reader.tf_record_input_reader.input_path: '
          f"no file matches '{tmp_path / 'gone.tfrecord'}'") in result.stderr
  assert not os.path.exists(tmp_path / 'model' / 'checkpoint')
