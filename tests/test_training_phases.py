"""Adam, then momentum SGD: scripts/train.sh runs the stock trainer once per phase."""
import os

from google.protobuf import text_format
import numpy as np
from object_detection.protos import pipeline_pb2
import pytest
import tensorflow as tf

from conftest import run_script
from gc_detection.od_api.training import training_phases
import tiny_configs

PHASES = ('training_phases { first_phase_steps: 100 second_phase_optimizer { '
          'momentum_optimizer { learning_rate { constant_learning_rate { '
          'learning_rate: 0.0001 } } momentum_optimizer_value: 0.9 } '
          'use_moving_average: false } }')


def _tensors(path, prefix):
  reader = tf.train.load_checkpoint(path)
  return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
          if key.startswith(prefix)}


def _step(path):
  return int(tf.train.load_checkpoint(path).get_tensor('step/.ATTRIBUTES/VARIABLE_VALUE'))


def _optimizer_slots(path):
  """The slot names the checkpointed optimizer keeps per variable."""
  return {key.split('.OPTIMIZER_SLOT/optimizer/')[1].split('/')[0]
          for key in _tensors(path, 'model/') if '.OPTIMIZER_SLOT/' in key}


def _weights(path):
  return {key: value for key, value in _tensors(path, 'model/').items()
          if '.OPTIMIZER_SLOT' not in key}


def _checkpoints(model_dir):
  state = tf.train.get_checkpoint_state(model_dir)
  return list(state.all_model_checkpoint_paths)


def test_two_phases_through_train_sh(tmp_path):
  source_size = 64
  stock = tiny_configs.built_model(
      tiny_configs.configs(tiny_configs.FRCNN_R50, source_size, tmp_path), source_size)
  backbone = stock._feature_extractor.classification_backbone  # pylint: disable=protected-access
  tiny_configs.randomise_bottleneck_block(backbone, 'conv4_block6', seed=6)
  fine_tune = tf.train.Checkpoint(model=stock).save(str(tmp_path / 'zoo' / 'ckpt'))
  expected = tiny_configs.expected_bottleneck_copy(backbone, 'conv4_block6', fold=True)
  config = tiny_configs.faster_rcnn_gc_training_config(
      tmp_path, fine_tune, extra_block=PHASES, learning_rate=1e-4)
  pipeline = text_format.Parse(open(config).read(), pipeline_pb2.TrainEvalPipelineConfig())
  pipeline.train_config.num_steps = 200
  # The generated checkpoint's untrained ResNet feeds the box classifier huge
  # features: unclipped momentum SGD turns its loss NaN within ~30 steps (a CI
  # run failed so); clipped, 300 momentum steps stay finite.
  pipeline.train_config.gradient_clipping_by_norm = 10.0
  text = text_format.MessageToString(pipeline)
  open(config, 'w').write(text)
  model_dir = str(tmp_path / 'model')

  result = run_script('train.sh', f'--pipeline_config_path={config}',
                      f'--model_dir={model_dir}', '--checkpoint_every_n=100', timeout=1500)
  assert result.returncode == 0, result.stderr[-4000:]
  assert 'phase 1 of 2' in result.stdout and 'phase 2 of 2' in result.stdout

  start, phase1_end, phase2_start, final = _checkpoints(model_dir)
  assert [_step(p) for p in (start, phase1_end, phase2_start, final)] == [0, 100, 100, 200]

  # Step 0, right after the fine-tune restore: the module is the bottleneck copy.
  gc = {key.split('/')[-3].replace('block_0.S', ''): value
        for key, value in _tensors(start, 'model/_feature_extractor_for_proposal').items()
        if 'block_0.S' in key and '.OPTIMIZER_SLOT' not in key}
  tiny_configs.assert_bottleneck_copy([gc], expected)

  # Phase 1 ran Adam, phase 2 momentum SGD with the configured momentum.
  assert _optimizer_slots(phase1_end) == {'m', 'v'}
  assert _optimizer_slots(final) == {'momentum'}
  assert tf.train.load_checkpoint(final).get_tensor(
      'optimizer/momentum/.ATTRIBUTES/VARIABLE_VALUE') == pytest.approx(0.9)
  phase2 = text_format.Parse(open(os.path.join(model_dir, 'pipeline_phase2.config')).read(),
                             pipeline_pb2.TrainEvalPipelineConfig())
  assert phase2.train_config.optimizer.WhichOneof('optimizer') == 'momentum_optimizer'

  # Phase 2 starts from the phase-1 weights, without Adam's state.
  assert not _tensors(phase2_start, 'optimizer/')
  phase1_weights = _weights(phase1_end)
  phase2_weights = _weights(phase2_start)
  assert set(phase2_weights) == set(phase1_weights) and len(phase2_weights) > 250
  for key, value in phase1_weights.items():
    np.testing.assert_array_equal(phase2_weights[key], value, err_msg=key)
  # ... and trains them.
  final_weights = _weights(final)
  assert any(not np.array_equal(final_weights[k], v) for k, v in phase2_weights.items())
  assert all(np.all(np.isfinite(v)) for v in final_weights.values())


def _write(tmp_path, block, num_steps=1000):
  pipeline = pipeline_pb2.TrainEvalPipelineConfig()
  text_format.Parse(open(os.path.join(tiny_configs.CONFIG_DIR,
                                      tiny_configs.FRCNN_GC_R50)).read(), pipeline)
  text = text_format.MessageToString(pipeline)
  start = text.index('[gc_detection.protos.global_context]')
  text = text[:start] + f'[gc_detection.protos.global_context] {{ {block} }}\n'
  text = text.replace('num_steps: 180000', f'num_steps: {num_steps}')
  path = tmp_path / 'pipeline.config'
  path.write_text(text)
  return str(path)


def test_plan_without_phases_is_one_phase(tmp_path):
  plan = training_phases.plan(_write(tmp_path, 'num_heads: 4'), str(tmp_path / 'm'))
  assert (plan.phases, plan.total_steps, plan.current_step) == (1, 1000, 0)


def test_plan_writes_the_phase2_config_and_picks_checkpoint_intervals(tmp_path):
  block = PHASES.replace('first_phase_steps: 100', 'first_phase_steps: 600')
  config = _write(tmp_path, 'num_heads: 8 ' + block, num_steps=2000)
  plan = training_phases.plan(config, str(tmp_path / 'm'), checkpoint_every_n=200)
  assert (plan.phases, plan.first_phase_steps, plan.total_steps) == (2, 600, 2000)
  # 600 and 2000 - 600 are multiples of 200: the user's interval works for both.
  assert (plan.phase1_checkpoint_every_n, plan.phase2_checkpoint_every_n) == (200, 200)
  # 1000 does not divide 600: phase 1 checkpoints every 100 steps to end on one.
  plan = training_phases.plan(config, str(tmp_path / 'm'), num_train_steps=1600,
                              checkpoint_every_n=1000)
  assert (plan.phase1_checkpoint_every_n, plan.phase2_checkpoint_every_n) == (100, 1000)

  original = pipeline_pb2.TrainEvalPipelineConfig()
  text_format.Parse(open(config).read(), original)
  phase2 = pipeline_pb2.TrainEvalPipelineConfig()
  text_format.Parse(open(plan.phase2_config).read(), phase2)
  assert phase2.train_config.optimizer.momentum_optimizer.momentum_optimizer_value == (
      pytest.approx(0.9))
  # Nothing else changed but the optimizer and the schedule.
  for field in ('model', 'train_input_reader', 'eval_config', 'eval_input_reader'):
    assert getattr(phase2, field) == getattr(original, field), field
  for pipeline in (phase2, original):
    pipeline.train_config.ClearField('optimizer')
  assert phase2.train_config == original.train_config
  phase2_text = open(plan.phase2_config).read()
  assert 'training_phases' not in phase2_text and 'num_heads: 8' in phase2_text
  assert 'current_step=0' in plan.as_shell()


@pytest.mark.parametrize('block, num_steps, message', [
    (PHASES.replace('100', '150'), 1000, 'training_phases.first_phase_steps: must be '
                                         'a positive multiple of 100'),
    ('training_phases { first_phase_steps: 100 }', 1000,
     'training_phases.second_phase_optimizer: missing'),
    (PHASES, 100, 'train_config.num_steps (or --num_train_steps): 100 must exceed'),
])
def test_plan_names_the_field_at_fault(block, num_steps, message, tmp_path):
  with pytest.raises(training_phases.PhaseError, match=None) as error:
    training_phases.plan(_write(tmp_path, block, num_steps), str(tmp_path / 'm'))
  assert message in str(error.value)
  assert '[gc_detection.protos.global_context]' in str(error.value) or 'num_steps' in message


def test_train_sh_reports_a_bad_schedule_before_training(tmp_path):
  config = _write(tmp_path, PHASES.replace('100', '150'))
  text = open(config).read().replace('PATH_TO_BE_CONFIGURED', '/data')
  open(config, 'w').write(text)
  result = run_script('train.sh', f'--pipeline_config_path={config}',
                      f'--model_dir={tmp_path / "m"}', timeout=300)
  assert result.returncode == 2
  assert 'first_phase_steps: must be a positive multiple of 100' in result.stderr
  assert 'got 150' in result.stderr


@pytest.mark.parametrize('name', ['faster_rcnn_resnet50_v1_gc_600x1024_coco.config',
                                  'faster_rcnn_resnet101_v1_gc_600x1024_coco.config',
                                  'mask_rcnn_resnet50_v1_gc_600x1024_coco.config'])
def test_the_shipped_schedule_is_a_valid_two_phase_plan(name, tmp_path):
  from object_detection.builders import optimizer_builder  # pylint: disable=g-import-not-at-top
  plan = training_phases.plan(os.path.join(tiny_configs.CONFIG_DIR, name),
                              str(tmp_path / 'm'))
  assert (plan.phases, plan.first_phase_steps, plan.total_steps) == (2, 60000, 180000)
  assert plan.phase1_checkpoint_every_n == plan.phase2_checkpoint_every_n == 1000
  phase2 = text_format.Parse(open(plan.phase2_config).read(),
                             pipeline_pb2.TrainEvalPipelineConfig())
  step = tf.Variable(0, dtype=tf.int64)
  optimizer, (learning_rate,) = optimizer_builder.build(
      phase2.train_config.optimizer, global_step=step)
  assert 'SGD' in type(optimizer).__name__
  rates = {}
  for at in (60000, 60999, 61000, 139999, 140000, 179999):
    step.assign(at)
    rates[at] = float(learning_rate())
  assert rates == pytest.approx({60000: 1e-3, 60999: 1e-3, 61000: 1e-2, 139999: 1e-2,
                                 140000: 1e-3, 179999: 1e-4})
