"""GlobalContextAttention against an independent NumPy float64 reference."""
import os

import numpy as np
import pytest
import tensorflow as tf

import attention_reference as reference
from gc_detection.layers import BatchNormParams
from gc_detection.layers import GlobalContextAttention


def _inputs(shape, seed=0, scale=1.0):
  return (np.random.default_rng(seed).normal(size=shape) * scale).astype(np.float32)


def _layer(**kwargs):
  """A layer with random (not zero) biases, so bias handling is tested too."""
  kwargs.setdefault('bias_initializer', tf.keras.initializers.RandomNormal(stddev=0.5))
  return GlobalContextAttention(**kwargs)


def _relative_error(actual, expected):
  return np.abs(np.asarray(actual, np.float64) - expected).max() / np.abs(expected).max()


@pytest.mark.parametrize('shape, num_heads, num_layers, use_residual', [
    ((2, 5, 7, 32), 4, 1, True),
    ((1, 6, 6, 64), 1, 1, False),
    ((2, 3, 9, 48), 2, 2, True),
    ((1, 4, 5, 128), 8, 3, False),
    ((1, 1, 1, 16), 2, 1, True),
])
def test_matches_the_numpy_float64_reference(shape, num_heads, num_layers,
                                             use_residual):
  tf.keras.utils.set_random_seed(1)
  layer = _layer(num_heads=num_heads, num_layers=num_layers,
                 use_residual=use_residual)
  x = _inputs(shape)
  actual = layer(x).numpy()
  expected, _ = reference.global_context(x, reference.blocks_of(layer), num_heads,
                                         use_residual)
  assert actual.shape == shape and actual.dtype == np.float32
  assert _relative_error(actual, expected) <= 1e-5


def test_q_k_and_v_start_independent():
  layer = _layer()
  layer.build((1, 2, 2, 64))
  block, = reference.blocks_of(layer)
  assert not np.allclose(block['wq'], block['wk'])
  assert not np.allclose(block['wk'], block['wv'])
  two_blocks = _layer(num_layers=2)
  two_blocks.build((1, 2, 2, 64))
  first, second = reference.blocks_of(two_blocks)
  assert not np.allclose(first['wq'], second['wq'])


def test_permuting_positions_permutes_the_output():
  layer = _layer(num_heads=4)
  x = _inputs((2, 6, 5, 32), seed=3)
  permutation = np.random.default_rng(4).permutation(30)
  permuted = x.reshape(2, 30, 32)[:, permutation].reshape(2, 6, 5, 32)
  out = layer(x).numpy().reshape(2, 30, 32)
  out_of_permuted = layer(permuted).numpy().reshape(2, 30, 32)
  np.testing.assert_allclose(out_of_permuted, out[:, permutation], atol=1e-5)


def test_gradients_agree_with_finite_differences():
  tf.keras.utils.set_random_seed(5)
  layer = _layer(num_heads=2, dtype='float64')
  x = tf.constant(np.random.default_rng(6).normal(size=(1, 2, 3, 8)))
  theoretical, numerical = tf.test.compute_gradient(lambda t: layer(t), [x])
  np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-6, rtol=1e-5)


def _loss_and_gradients(layer, x, training=True):
  x = tf.constant(x)
  with tf.GradientTape() as tape:
    tape.watch(x)
    out = layer(x, training=training)
    loss = tf.reduce_sum(tf.sin(out))
  return out.numpy(), [g.numpy() for g in tape.gradient(loss, [x] + layer.trainable_weights)]


@pytest.mark.parametrize('chunk_size, training', [(8, True), (7, True), (16, False)])
def test_chunked_equals_unchunked_forward_and_gradients(chunk_size, training):
  x = _inputs((2, 6, 7, 32), seed=8)
  unchunked = _layer(num_heads=4, num_layers=2, chunk_threshold=None)
  unchunked.build(x.shape)
  chunked = _layer(num_heads=4, num_layers=2, chunk_threshold=10,
                   chunk_size=chunk_size)
  chunked.build(x.shape)
  chunked.set_weights(unchunked.get_weights())
  out_full, grads_full = _loss_and_gradients(unchunked, x, training)
  out_chunked, grads_chunked = _loss_and_gradients(chunked, x, training)
  np.testing.assert_allclose(out_chunked, out_full, atol=1e-5, rtol=1e-5)
  for full, part in zip(grads_full, grads_chunked):
    assert _relative_error(part, full) <= 1e-5


def _softmax_ops_in_training_step(layer, shape, training):
  """Counts Softmax ops in the graph of a forward+backward step, nested
  function bodies (while loops, recompute_grad) included."""
  @tf.function
  def step(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(layer(x, training=training))
    return tape.gradient(loss, x)
  graph_def = step.get_concrete_function(tf.TensorSpec(shape)).graph.as_graph_def()
  nodes = list(graph_def.node)
  for function in graph_def.library.function:
    nodes.extend(function.node_def)
  return sum(node.op == 'Softmax' for node in nodes)


def test_chunked_training_recomputes_attention_in_the_backward_pass():
  # Without recompute the backward pass reuses the forward softmax output, so
  # every chunk's attention matrix stays alive until it runs. With recompute
  # (training=True) the backward pass runs the chunk's softmax again: the
  # graph holds one more Softmax than the same chunked step without it.
  shape = (1, 6, 6, 32)
  chunked = _layer(chunk_threshold=8, chunk_size=8)
  kept = _softmax_ops_in_training_step(chunked, shape, training=False)
  recomputed = _softmax_ops_in_training_step(chunked, shape, training=True)
  assert recomputed == kept + 1
  unchunked = _layer(chunk_threshold=None)
  assert _softmax_ops_in_training_step(unchunked, shape, training=True) == 1


def test_dynamic_spatial_shapes_take_either_path():
  layer = _layer(num_heads=4, chunk_threshold=30, chunk_size=16)
  layer.build((None, None, None, 32))
  run = tf.function(lambda t: layer(t),
                    input_signature=[tf.TensorSpec([None, None, None, 32])])
  for shape in ((1, 4, 5, 32), (2, 7, 9, 32)):  # 20 tokens: full; 63: chunked
    x = _inputs(shape, seed=shape[1])
    expected, _ = reference.global_context(x, reference.blocks_of(layer), 4)
    assert _relative_error(run(x).numpy(), expected) <= 1e-5


def test_static_shapes_stay_static():
  layer = _layer(chunk_threshold=16, chunk_size=8)
  for threshold_exceeded_shape in ((2, 3, 4, 32), (2, 6, 7, 32)):
    concrete = tf.function(lambda t: layer(t)).get_concrete_function(
        tf.TensorSpec(threshold_exceeded_shape))
    assert concrete.structured_outputs.shape == threshold_exceeded_shape


@pytest.mark.parametrize('chunked', [False, True])
def test_xla_compiled_output_equals_eager(chunked):
  layer = _layer(num_heads=4, chunk_threshold=16 if chunked else None, chunk_size=8)
  x = _inputs((2, 5, 6, 32), seed=9)
  eager = layer(x).numpy()
  compiled = tf.function(lambda t: layer(t), jit_compile=True)(x).numpy()
  np.testing.assert_allclose(compiled, eager, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('policy, tolerance, compute_dtype', [
    ('mixed_float16', 2e-3, tf.float16),
    ('mixed_bfloat16', 1e-2, tf.bfloat16),
])
def test_mixed_precision(policy, tolerance, compute_dtype):
  x = _inputs((2, 6, 6, 64), seed=10, scale=0.5)
  full = _layer(num_heads=4)
  reference_out = full(x).numpy()
  mixed = _layer(num_heads=4, dtype=policy)
  mixed.build(x.shape)
  mixed.set_weights(full.get_weights())
  assert all(w.dtype == tf.float32 for w in mixed.weights)  # variables stay fp32
  out = mixed(x)
  assert out.dtype == compute_dtype
  out = out.numpy().astype(np.float64)
  assert np.all(np.isfinite(out))
  assert _relative_error(out, reference_out) <= tolerance
  # The softmax itself runs in float32.
  graph = tf.function(lambda t: mixed(t)).get_concrete_function(
      tf.TensorSpec(x.shape)).graph
  softmax_types = {op.get_attr('T') for op in graph.get_operations()
                   if op.type == 'Softmax'}
  assert softmax_types == {tf.float32}


def test_attention_weights_are_returned_on_request():
  layer = _layer(num_heads=2, num_layers=2, chunk_threshold=4, chunk_size=4)
  x = _inputs((2, 3, 4, 16), seed=11)
  out, weights = layer(x, return_attention_scores=True)
  expected_out, expected_weights = reference.global_context(
      x, reference.blocks_of(layer), 2)
  assert _relative_error(out.numpy(), expected_out) <= 1e-5
  assert len(weights) == 2
  for actual, expected in zip(weights, expected_weights):
    assert actual.shape == (2, 2, 12, 12) and actual.dtype == tf.float32
    np.testing.assert_allclose(actual.numpy(), expected, atol=1e-6)
  np.testing.assert_allclose(layer(x).numpy(), out.numpy(), atol=1e-6)


def test_zero_output_kernel_starts_as_identity():
  layer = GlobalContextAttention(output_kernel_initializer='zeros')
  x = _inputs((1, 4, 4, 32))
  np.testing.assert_array_equal(layer(x).numpy(), x)


def test_attention_dropout_acts_only_in_training():
  x = _inputs((1, 4, 4, 32), seed=12)
  layer = _layer(attention_dropout=0.5, chunk_threshold=None)
  no_dropout = _layer(attention_dropout=0.0)
  no_dropout.build(x.shape)
  layer.build(x.shape)
  no_dropout.set_weights(layer.get_weights())
  np.testing.assert_allclose(layer(x, training=False).numpy(),
                             no_dropout(x).numpy(), atol=1e-6)
  assert not np.allclose(layer(x, training=True).numpy(), no_dropout(x).numpy())
  chunked = _layer(attention_dropout=0.5, chunk_threshold=8, chunk_size=8)
  chunked.build(x.shape)
  chunked.set_weights(layer.get_weights())
  out, grads = _loss_and_gradients(chunked, x)
  assert np.all(np.isfinite(out)) and all(np.all(np.isfinite(g)) for g in grads)
  assert not np.allclose(out, no_dropout(x).numpy())


def test_config_round_trip_rebuilds_the_same_layer():
  layer = _layer(num_heads=2, num_layers=2, bottleneck_ratio=2, use_residual=False,
                 attention_dropout=0.1, chunk_size=64, chunk_threshold=None,
                 output_kernel_initializer='zeros')
  x = _inputs((1, 3, 3, 16))
  out = layer(x).numpy()
  assert tf.keras.utils.get_registered_name(GlobalContextAttention) == (
      'gc_detection>GlobalContextAttention')
  serialized = tf.keras.utils.serialize_keras_object(layer)
  clone = tf.keras.utils.deserialize_keras_object(serialized)
  assert clone.get_config() == layer.get_config()
  if not clone.built:  # tf-keras 2.15 restores the build shape itself
    clone.build(x.shape)
  clone.set_weights(layer.get_weights())
  np.testing.assert_array_equal(clone(x).numpy(), out)


def test_saved_model_round_trip(tmp_path):
  inputs = tf.keras.Input((None, None, 32))
  model = tf.keras.Model(inputs, _layer(num_heads=4, chunk_threshold=20,
                                        chunk_size=8)(inputs))
  path = str(tmp_path / 'model')
  model.save(path, save_format='tf')
  loaded = tf.keras.models.load_model(path)
  assert isinstance(loaded.layers[-1], GlobalContextAttention)
  restored_plain = tf.saved_model.load(path)
  for shape in ((1, 3, 4, 32), (2, 5, 6, 32)):  # below and above the threshold
    x = _inputs(shape, seed=shape[2])
    expected = model(x).numpy()
    np.testing.assert_array_equal(loaded(x).numpy(), expected)
    np.testing.assert_allclose(restored_plain(x).numpy(), expected, atol=1e-6)


def _batch_norm(channels, seed):
  rng = np.random.default_rng(seed)
  return BatchNormParams(gamma=rng.uniform(0.5, 2.0, channels),
                         beta=rng.normal(size=channels),
                         mean=rng.normal(size=channels),
                         variance=rng.uniform(0.1, 3.0, channels), epsilon=1e-5)


def _conv_then_frozen_batch_norm(x, kernel, bias, batch_norm):
  """tf.keras Conv2D 1x1 -> BatchNormalization (inference), as in ResNet."""
  conv = tf.keras.layers.Conv2D(kernel.shape[-1], 1, use_bias=True)
  bn = tf.keras.layers.BatchNormalization(epsilon=batch_norm.epsilon)
  y = conv(x)
  conv.set_weights([kernel, bias])
  bn(y)
  bn.set_weights([batch_norm.gamma, batch_norm.beta, batch_norm.mean,
                  batch_norm.variance])
  return bn(conv(x), training=False).numpy()


def test_loading_a_bottleneck_with_folded_batch_norm():
  rng = np.random.default_rng(13)
  channels, reduced = 64, 16
  reduce_kernel = rng.normal(size=(1, 1, channels, reduced)).astype(np.float32)
  reduce_bias = rng.normal(size=reduced).astype(np.float32)
  expand_kernel = rng.normal(size=(1, 1, reduced, channels)).astype(np.float32)
  expand_bias = rng.normal(size=channels).astype(np.float32)
  reduce_bn, expand_bn = _batch_norm(reduced, 14), _batch_norm(channels, 15)

  layer = GlobalContextAttention(num_heads=4)
  layer.build((1, 3, 3, channels))
  layer.load_bottleneck_weights(reduce_kernel, expand_kernel, reduce_bias,
                                expand_bias, reduce_bn, expand_bn)
  block, = reference.blocks_of(layer)

  x = _inputs((1, 3, 3, channels), seed=16)
  expected_q = _conv_then_frozen_batch_norm(x, reduce_kernel, reduce_bias, reduce_bn)
  tokens = x.reshape(9, channels).astype(np.float64)
  for name in ('q', 'k', 'v'):
    projection = tokens @ block['w' + name] + block['b' + name]
    np.testing.assert_allclose(projection, expected_q.reshape(9, reduced),
                               rtol=1e-4, atol=1e-4)
  context = _inputs((1, 3, 3, reduced), seed=17)
  expected_out = _conv_then_frozen_batch_norm(context, expand_kernel, expand_bias,
                                              expand_bn)
  out = context.reshape(9, reduced).astype(np.float64) @ block['wo'] + block['bo']
  np.testing.assert_allclose(out, expected_out.reshape(9, channels),
                             rtol=1e-4, atol=1e-4)


def test_loading_without_batch_norm_copies_the_kernels():
  layer = GlobalContextAttention(num_heads=2, num_layers=2)
  layer.build((1, 2, 2, 32))
  reduce_kernel = _inputs((32, 8))
  expand_kernel = _inputs((8, 32), seed=1)
  layer.load_bottleneck_weights(reduce_kernel, expand_kernel, layer_index=1)
  _, second = reference.blocks_of(layer)
  for name in ('wq', 'wk', 'wv'):
    np.testing.assert_array_equal(second[name], reduce_kernel)
  np.testing.assert_array_equal(second['wo'], expand_kernel)
  assert not np.any(second['bq']) and not np.any(second['bo'])


@pytest.mark.parametrize('call, message', [
    (lambda l: l.load_bottleneck_weights(np.zeros((32, 4)), np.zeros((8, 32))),
     r'reduce_kernel must have shape \(32, 8\).*got \(32, 4\)'),
    (lambda l: l.load_bottleneck_weights(np.zeros((32, 8)), np.zeros((1, 1, 8, 16))),
     r'expand_kernel must have shape \(8, 32\).*got \(8, 16\)'),
    (lambda l: l.load_bottleneck_weights(np.zeros((3, 3, 32, 8)), np.zeros((8, 32))),
     r'reduce_kernel must be a 1x1 convolution kernel.*\(3, 3, 32, 8\)'),
    (lambda l: l.load_bottleneck_weights(np.zeros((32, 8)), np.zeros((8, 32)),
                                         layer_index=1),
     r'layer_index must be in \[0, 1\), got 1'),
    (lambda l: l.load_bottleneck_weights(
        np.zeros((32, 8)), np.zeros((8, 32)),
        reduce_batch_norm=BatchNormParams(np.ones(4), np.ones(4), np.ones(4),
                                          np.ones(4))),
     r'batch norm gamma must have shape \(8,\).*got \(4,\)'),
])
def test_weight_loading_errors_name_the_argument(call, message):
  layer = GlobalContextAttention(num_heads=2)
  layer.build((1, 2, 2, 32))
  with pytest.raises(ValueError, match=message):
    call(layer)


@pytest.mark.parametrize('kwargs, shape, message', [
    ({}, (2, 16, 32), r'rank 4 \(N, H, W, C\), got shape \(2, 16, 32\)'),
    ({'bottleneck_ratio': 3}, (1, 2, 2, 32),
     r'channels C=32 must be divisible by bottleneck_ratio=3'),
    ({'num_heads': 3}, (1, 2, 2, 32),
     r'C / bottleneck_ratio = 32 / 4 = 8 must be divisible by num_heads=3'),
    ({}, (1, 2, 2, None), r'channel dimension C to be known'),
])
def test_shape_errors_name_the_numbers(kwargs, shape, message):
  with pytest.raises(ValueError, match=message):
    GlobalContextAttention(**kwargs).build(shape)


@pytest.mark.parametrize('kwargs, message', [
    ({'num_heads': 0}, 'num_heads must be a positive integer, got 0'),
    ({'num_layers': -1}, 'num_layers must be a positive integer, got -1'),
    ({'bottleneck_ratio': 2.5}, 'bottleneck_ratio must be a positive integer, got 2.5'),
    ({'chunk_size': 0}, 'chunk_size must be a positive integer, got 0'),
    ({'chunk_threshold': 0}, 'chunk_threshold must be a positive integer, got 0'),
    ({'attention_dropout': 1.0}, r'attention_dropout must be in \[0, 1\), got 1.0'),
    ({'num_heads': True}, 'num_heads must be a positive integer, got True'),
])
def test_bad_arguments_are_named(kwargs, message):
  with pytest.raises(ValueError, match=message):
    GlobalContextAttention(**kwargs)


def test_the_layer_module_does_not_import_the_od_api():
  import subprocess
  import sys
  code = ('import sys; import gc_detection.layers;'
          'print(any(m.startswith("object_detection") for m in sys.modules))')
  result = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, env=dict(os.environ))
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == 'False'


def test_weights_have_a_heads_axis():
  layer = GlobalContextAttention(num_heads=8, num_layers=2)
  layer.build((1, 2, 2, 1024))
  shapes = {'/'.join(w.name.split('/')[-2:]): tuple(w.shape) for w in layer.weights}
  assert shapes == {
      f'block_{i}/{name}:0': shape for i in range(2) for name, shape in (
          ('qkv_kernel', (1024, 3, 8, 32)), ('qkv_bias', (3, 8, 32)),
          ('output_kernel', (8, 32, 1024)), ('output_bias', (1024,)))}
