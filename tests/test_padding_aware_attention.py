"""GlobalContextAttention with valid_shape: padding is neither attended nor updated.

The reference (attention_reference.global_context_on_valid_regions) is the
definition itself in NumPy float64: each image's valid block cut out and run
through the paper's block alone, every other cell left as it was.
"""
import numpy as np
import pytest
import tensorflow as tf

import attention_reference as reference
from gc_detection.layers import GlobalContextAttention
from gc_detection.layers import attention_ops
from gc_detection.layers import true_image_sizes

MAP_SHAPE = (3, 6, 8, 32)
# Image 0 fills the canvas, image 1 is a tall one, image 2 a wide one.
VALID = np.array([[6, 8], [5, 3], [2, 7]], np.int32)


def _layer(**kwargs):
  kwargs.setdefault('bias_initializer', tf.keras.initializers.RandomNormal(stddev=0.5))
  kwargs.setdefault('num_heads', 4)
  return GlobalContextAttention(**kwargs)


def _padded_inputs(valid, shape=MAP_SHAPE, seed=0, padding_scale=100.0):
  """Random maps whose padded cells hold large random values of their own."""
  rng = np.random.default_rng(seed)
  maps = rng.normal(size=shape)
  for index, (rows, columns) in enumerate(valid):
    outside = np.ones(shape[1:3], bool)
    outside[:rows, :columns] = False
    maps[index][outside] = rng.normal(size=(outside.sum(), shape[3])) * padding_scale
  return maps.astype(np.float32)


def _valid_mask(valid, shape=MAP_SHAPE):
  mask = np.zeros(shape[:3], bool)
  for index, (rows, columns) in enumerate(valid):
    mask[index, :rows, :columns] = True
  return mask


def _relative_error(actual, expected, mask):
  actual, expected = np.asarray(actual, np.float64)[mask], expected[mask]
  return np.abs(actual - expected).max() / np.abs(expected).max()


def _run(layer, x, valid, mode):
  if mode == 'eager':
    return layer(x, valid_shape=valid).numpy()
  if mode == 'dynamic':  # unknown N, H, W: the crop's shapes are run-time values
    function = tf.function(lambda maps, shape: layer(maps, valid_shape=shape),
                           input_signature=[tf.TensorSpec([None, None, None, x.shape[3]]),
                                            tf.TensorSpec([None, 2], tf.int32)])
    return function(x, valid).numpy()
  return tf.function(lambda maps, shape: layer(maps, valid_shape=shape),
                     jit_compile=True)(x, valid).numpy()


@pytest.mark.parametrize('mode', ['eager', 'dynamic', 'xla'])
@pytest.mark.parametrize('num_layers, use_residual, chunk_threshold', [
    (1, True, None), (2, True, 16), (2, False, None), (1, False, 8)])
def test_valid_cells_follow_the_reference_whatever_the_padding_holds(
    mode, num_layers, use_residual, chunk_threshold):
  tf.keras.utils.set_random_seed(2)
  layer = _layer(num_layers=num_layers, use_residual=use_residual,
                 chunk_threshold=chunk_threshold, chunk_size=8)
  x = _padded_inputs(VALID)
  layer(x)  # build
  expected, _ = reference.global_context_on_valid_regions(
      x, VALID, reference.blocks_of(layer), 4, use_residual)
  actual = _run(layer, x, VALID, mode)
  mask = _valid_mask(VALID)
  assert _relative_error(actual, expected, mask) <= 1e-5
  # Padded cells pass through exactly.
  np.testing.assert_array_equal(actual[~mask], x[~mask])
  # Other padding, same valid outputs (float32: within 1e-5).
  refilled = _padded_inputs(VALID, seed=1)
  refilled[mask] = x[mask]
  again = _run(layer, refilled, VALID, mode)
  np.testing.assert_allclose(again[mask], actual[mask], atol=1e-5, rtol=1e-5)


def test_an_image_gives_the_same_output_alone_and_in_any_batch():
  layer = _layer()
  x = _padded_inputs(VALID)
  batched = layer(x, valid_shape=VALID).numpy()
  for index, (rows, columns) in enumerate(VALID):
    alone = layer(x[index:index + 1, :rows, :columns]).numpy()[0]
    np.testing.assert_allclose(batched[index, :rows, :columns], alone, atol=1e-5,
                               rtol=1e-5)
    # Alone on a larger canvas of its own.
    canvas = np.zeros((1, 9, 9, MAP_SHAPE[3]), np.float32)
    canvas[0, :rows, :columns] = x[index, :rows, :columns]
    padded = layer(canvas, valid_shape=[[rows, columns]]).numpy()[0]
    np.testing.assert_allclose(padded[:rows, :columns], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('valid', [[[6, 8]] * 3, [[7, 9], [6, 8], [60, 80]]])
def test_without_padding_the_output_is_the_unmasked_layers(valid):
  layer = _layer(num_layers=2)
  x = _padded_inputs([[6, 8]] * 3)
  np.testing.assert_array_equal(layer(x, valid_shape=valid).numpy(), layer(x).numpy())


@pytest.mark.parametrize('training, chunk_threshold', [(False, None), (True, 16)])
def test_gradients_follow_the_cropped_images(training, chunk_threshold):
  """No gradient reaches a padded cell; valid cells and weights get what each
  image's own cropped run gives them."""
  layer = _layer(num_layers=2, chunk_threshold=chunk_threshold, chunk_size=8)
  x = tf.constant(_padded_inputs(VALID, padding_scale=3.0))
  upstream = tf.constant(np.random.default_rng(5).normal(size=MAP_SHAPE), tf.float32)
  mask = _valid_mask(VALID)
  layer(x)
  with tf.GradientTape() as tape:
    tape.watch(x)
    loss = tf.reduce_sum(layer(x, valid_shape=VALID, training=training) * upstream
                         * mask[..., None])
  input_gradient, *weight_gradients = tape.gradient(loss, [x] + layer.trainable_weights)
  input_gradient = input_gradient.numpy()
  assert np.all(input_gradient[~mask] == 0)
  expected_weights = [np.zeros(w.shape) for w in layer.trainable_weights]
  for index, (rows, columns) in enumerate(VALID):
    crop = x[index:index + 1, :rows, :columns]
    with tf.GradientTape() as tape:
      tape.watch(crop)
      loss = tf.reduce_sum(layer(crop, training=training)
                           * upstream[index:index + 1, :rows, :columns])
    crop_gradient, *crop_weights = tape.gradient(loss, [crop] + layer.trainable_weights)
    np.testing.assert_allclose(input_gradient[index, :rows, :columns],
                               crop_gradient.numpy()[0], atol=1e-4, rtol=1e-4)
    for total, part in zip(expected_weights, crop_weights):
      total += part.numpy()
  for actual, expected in zip(weight_gradients, expected_weights):
    np.testing.assert_allclose(actual.numpy(), expected, atol=1e-3, rtol=1e-4)


def test_attention_weights_leave_out_padded_queries_and_keys():
  layer = _layer(num_heads=2, num_layers=2)
  x = _padded_inputs(VALID)
  outputs, weights = layer(x, valid_shape=VALID, return_attention_scores=True)
  expected_outputs, expected_weights = reference.global_context_on_valid_regions(
      x, VALID, reference.blocks_of(layer), 2)
  mask = _valid_mask(VALID)
  assert _relative_error(outputs.numpy(), expected_outputs, mask) <= 1e-5
  for actual, expected in zip(weights, expected_weights):
    assert actual.shape == (3, 2, 48, 48)
    np.testing.assert_allclose(actual.numpy(), expected, atol=1e-6)


@pytest.mark.parametrize('policy', ['mixed_float16', 'mixed_bfloat16'])
def test_mixed_precision_ignores_padding_too(policy):
  full = _layer()
  x = _padded_inputs(VALID, padding_scale=10.0)
  full(x)
  mixed = _layer(dtype=policy)
  mixed.build(x.shape)
  mixed.set_weights(full.get_weights())
  mask = _valid_mask(VALID)
  refilled = _padded_inputs(VALID, seed=3, padding_scale=10.0)
  refilled[mask] = x[mask]
  first = mixed(x, valid_shape=VALID).numpy().astype(np.float64)
  second = mixed(refilled, valid_shape=VALID).numpy().astype(np.float64)
  np.testing.assert_array_equal(first[mask], second[mask])
  expected, _ = reference.global_context_on_valid_regions(
      x, VALID, reference.blocks_of(full), 4)
  assert _relative_error(first, expected, mask) <= 2e-2


def test_an_image_without_valid_cells_passes_through():
  layer = _layer()
  x = _padded_inputs([[0, 0], [2, 2], [6, 8]])
  outputs = layer(x, valid_shape=[[0, 0], [2, 2], [6, 8]]).numpy()
  np.testing.assert_array_equal(outputs[0], x[0])
  assert np.all(np.isfinite(outputs))


def test_the_attention_runs_over_the_batchs_valid_extent_only(monkeypatch):
  """Outside XLA the keys are the smallest top-left block holding every
  image's region; under XLA the whole map, masked."""
  key_lengths = []
  scores = attention_ops.attention_scores

  def recording_scores(query, key):
    key_lengths.append(key.shape[2])
    return scores(query, key)

  monkeypatch.setattr(attention_ops, 'attention_scores', recording_scores)
  layer = _layer()
  x = _padded_inputs([[5, 3], [2, 7], [4, 4]])
  layer(x, valid_shape=[[5, 3], [2, 7], [4, 4]])
  assert key_lengths == [5 * 7]
  tf.function(lambda maps: layer(maps, valid_shape=[[5, 3], [2, 7], [4, 4]]),
              jit_compile=True)(x)
  assert key_lengths[-1] == 6 * 8


def test_a_valid_shape_of_the_wrong_shape_is_named():
  layer = _layer()
  with pytest.raises(ValueError, match=r'valid_shape must have shape \(N, 2\)'):
    layer(_padded_inputs(VALID), valid_shape=[6, 8])


def test_the_true_size_layer_reads_the_sizes_of_its_scope():
  """Sizes in input pixels (float, as Model Garden's image_info has them) ->
  valid cells ceil(size / stride); outside a scope the whole map."""
  layer = true_image_sizes.TrueSizeGlobalContextAttention(stride=16, num_heads=4)
  x = _padded_inputs(VALID)
  sizes = tf.constant([[96.0, 128.0], [66.4, 40.0], [32.0, 100.5]])  # pixels
  cells = [[6, 8], [5, 3], [2, 7]]  # = VALID
  with true_image_sizes.scope(sizes):
    scoped = layer(x).numpy()
    explicit_wins = layer(x, valid_shape=[[6, 8]] * 3).numpy()
  np.testing.assert_array_equal(scoped, layer(x, valid_shape=cells).numpy())
  np.testing.assert_array_equal(explicit_wins, layer(x).numpy())
  assert true_image_sizes.current() is None
  config = layer.get_config()
  assert config['stride'] == 16
  assert type(layer).from_config(config).stride == 16
