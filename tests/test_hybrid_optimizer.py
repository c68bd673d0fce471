"""global_context_optimizer: Adam on the module, momentum SGD on everything else."""
import os

from google.protobuf import text_format
import numpy as np
from object_detection import inputs
from object_detection import model_lib_v2
from object_detection.builders import model_builder
from object_detection.builders import optimizer_builder
from object_detection.protos import pipeline_pb2
from object_detection.utils import config_util
import pytest
import tensorflow as tf
import tensorflow.compat.v1 as tf1

from gc_detection.layers import GlobalContextAttention
import tiny_configs

# MultiOptimizer comes from tensorflow-addons, which supports TF <= 2.15 only
# (the tf220 stack has none; test_hybrid_optimizer_without_addons covers that).
pytest.importorskip('tensorflow_addons', reason='tensorflow-addons is not installed (TF >= 2.16 stack)')
from gc_detection.od_api.training.hybrid_optimizer import GlobalContextMultiOptimizer  # pylint: disable=g-import-not-at-top,wrong-import-position

ADAM_RATE, SGD_RATE, MOMENTUM = 0.01, 0.1, 0.9


def _toy_model(seed=0):
  tf.keras.utils.set_random_seed(seed)
  inputs_ = tf.keras.Input((4, 4, 8))
  layer = GlobalContextAttention(num_heads=2, name='global_context')
  outputs = tf.keras.layers.Dense(3, name='head')(layer(inputs_))
  return tf.keras.Model(inputs_, outputs), layer


def _hybrid(layer):
  return GlobalContextMultiOptimizer(
      tf1.keras.optimizers.Adam(ADAM_RATE),
      tf1.keras.optimizers.SGD(SGD_RATE, momentum=MOMENTUM), layer)


def _images(step):
  return tf.constant(np.random.default_rng(step).normal(size=(2, 4, 4, 8)), tf.float32)


def _gradients(model, step):
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(model(_images(step)) ** 2)
  return tape.gradient(loss, model.trainable_variables)


def _train(model, optimizer, steps):
  for step in steps:
    optimizer.apply_gradients(zip(_gradients(model, step), model.trainable_variables))


def test_the_module_gets_adam_and_the_rest_momentum_sgd():
  model, layer = _toy_model()
  before = [v.numpy().astype(np.float64) for v in model.trainable_variables]
  gradients = [g.numpy().astype(np.float64) for g in _gradients(model, 0)]
  _train(model, _hybrid(layer), [0])
  module = {v.name for v in layer.trainable_variables}
  assert len(module) == 4
  for variable, start, gradient in zip(model.trainable_variables, before, gradients):
    if variable.name in module:
      # Adam's first step (Keras legacy form, beta_1 0.9, beta_2 0.999, eps 1e-7).
      m, v = 0.1 * gradient, 0.001 * gradient ** 2
      rate = ADAM_RATE * np.sqrt(1 - 0.999) / (1 - 0.9)
      expected = start - rate * m / (np.sqrt(v) + 1e-7)
    else:
      expected = start - SGD_RATE * gradient  # momentum SGD's first step
    np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-5, atol=1e-6,
                               err_msg=variable.name)


def test_both_optimizers_state_is_checkpointed_and_resumes_exactly(tmp_path):
  model, layer = _toy_model()
  _train(model, _hybrid(layer), range(4))
  uninterrupted = [v.numpy() for v in model.trainable_variables]

  model, layer = _toy_model()
  optimizer = _hybrid(layer)
  _train(model, optimizer, range(2))
  path = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / 'c'))
  slots = {name.split('.OPTIMIZER_SLOT/optimizer/')[1].rsplit('/', 2)[0]
           for name, _ in tf.train.list_variables(path) if '.OPTIMIZER_SLOT' in name}
  assert slots == {'global_context_optimizer/m', 'global_context_optimizer/v',
                   'other_optimizer/momentum'}

  model, layer = _toy_model(seed=1)  # other weights: the restore must set them
  optimizer = _hybrid(layer)
  tf.train.Checkpoint(model=model, optimizer=optimizer).restore(path)
  _train(model, optimizer, range(2, 4))
  for want, got in zip(uninterrupted, model.trainable_variables):
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-7)


def test_a_layer_outside_the_model_is_reported():
  model, _ = _toy_model()
  _, stranger = _toy_model(seed=1)
  with pytest.raises(ValueError, match="none of the trained variables belongs to the "
                                       "layer 'global_context'"):
    _train(model, _hybrid(stranger), [0])


HYBRID_BLOCK = ('global_context_optimizer { adam_optimizer { learning_rate { '
                'constant_learning_rate { learning_rate: 0.0001 } } } '
                'use_moving_average: false }')


def _with_momentum_sgd(config_path, use_moving_average=False):
  pipeline = text_format.Parse(open(config_path).read(),
                               pipeline_pb2.TrainEvalPipelineConfig())
  optimizer = pipeline.train_config.optimizer
  optimizer.Clear()
  optimizer.momentum_optimizer.momentum_optimizer_value = 0.9
  optimizer.momentum_optimizer.learning_rate.constant_learning_rate.learning_rate = 1e-3
  optimizer.use_moving_average = use_moving_average
  text = text_format.MessageToString(pipeline)
  open(config_path, 'w').write(text)
  return config_path


def test_the_stock_trainer_pieces_build_and_step_the_hybrid(tmp_path):
  stock = tiny_configs.built_model(
      tiny_configs.configs(tiny_configs.FRCNN_R50, 64, tmp_path), 64)
  fine_tune = tf.train.Checkpoint(model=stock).save(str(tmp_path / 'zoo' / 'ckpt'))
  config = _with_momentum_sgd(tiny_configs.faster_rcnn_gc_training_config(
      tmp_path, fine_tune, extra_block=HYBRID_BLOCK))
  # What model_lib_v2.train_loop does, step by step.
  configs = config_util.get_configs_from_pipeline_file(config)
  model = model_builder.build(configs['model'], is_training=True)
  step = tf.Variable(0, dtype=tf.int64)
  optimizer, _ = optimizer_builder.build(configs['train_config'].optimizer,
                                         global_step=step)
  assert isinstance(optimizer, GlobalContextMultiOptimizer)
  layer = model._feature_extractor.global_context  # pylint: disable=protected-access
  assert optimizer._global_context_layer is layer  # pylint: disable=protected-access
  dataset = inputs.train_input(configs['train_config'], configs['train_input_config'],
                               configs['model'], model=model)
  features, labels = next(iter(dataset))
  module_before = [v.numpy().copy() for v in layer.trainable_variables]
  model_lib_v2.eager_train_step(model, features, labels, False, optimizer,
                                training_step=step)
  assert optimizer.optimizer_specs[0]['weights'] == [v.name for v in layer.trainable_variables]
  assert len(optimizer.optimizer_specs[1]['weights']) > 100
  assert all(not np.array_equal(before, v.numpy())
             for before, v in zip(module_before, layer.trainable_variables))
  path = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / 'c'))
  names = [name for name, _ in tf.train.list_variables(path)]
  module_slots = [n for n in names if 'block_0.S' in n and '.OPTIMIZER_SLOT' in n]
  assert len(module_slots) == 8 and all('global_context_optimizer' in n for n in module_slots)
  other_slots = [n for n in names if '.OPTIMIZER_SLOT' in n and 'block_0.S' not in n]
  assert other_slots and all('other_optimizer/momentum' in n for n in other_slots)


def _without_module_optimizer(path):
  text = open(path).read().replace(
      'adam_optimizer { learning_rate { constant_learning_rate { learning_rate: '
      '0.0001 } } } ', '')
  open(path, 'w').write(text)


@pytest.mark.parametrize('edit, message', [
    (lambda p: _with_momentum_sgd(p, use_moving_average=True),
     'train_config.optimizer: use_moving_average is not supported'),
    (_without_module_optimizer, 'global_context_optimizer: no optimizer set'),
])
def test_unusable_hybrid_settings_name_the_field(edit, message, tmp_path):
  path = tmp_path / 'pipeline.config'
  text = open(os.path.join(tiny_configs.CONFIG_DIR, tiny_configs.FRCNN_GC_R50)).read()
  path.write_text(text.rstrip().rstrip('}') + HYBRID_BLOCK + '\n}\n')
  edit(str(path))
  with pytest.raises(ValueError, match=message):
    config_util.get_configs_from_pipeline_file(str(path))
