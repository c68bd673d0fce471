"""GlobalContextAttention weight gradients against float64 finite differences.

test_global_context_attention.py checks the gradient with respect to the
input only. Here the gradients of a scalar loss with respect to every weight
of every stacked block (qkv_kernel (C, 3, h, d), qkv_bias (3, h, d),
output_kernel (h, d, C), output_bias (C,)) are taken with tf.GradientTape from
the layer run in float64, and compared with central finite differences of the
same loss computed with the independent NumPy float64 reference
(attention_reference.py), into which the layer's weights are copied and
perturbed one entry at a time.

Why the tolerance catches a wrong gradient: the finite differences use the
fourth-order central stencil with step 1e-3; tape and differences agree to
about 1e-12 of the gradient scale (the largest |finite difference| of the
case, about 5-15). The tolerance is 1e-9 of that scale. Measured on the cases
below by temporarily patching the layer (code left unmodified), a wrong
gradient is off by 0.08-4 of the scale, 8 to 9 orders of magnitude above the
tolerance:
  - keys without a gradient (tf.stop_gradient on the keys): 0.08-0.67 of the
    scale, in every case;
  - the softmax Jacobian without its -p * sum(p * g) term: 0.65-4.1;
  - the residual's identity path dropped from the backward pass: 0.6-1.0 in
    the two-layer residual cases (with one block it carries no weight
    gradient);
  - keys and values without a gradient on the chunked path only (what a
    broken tf.recompute_grad would do): 0.24-1.0 in the chunked cases.
(Until the layer built its 1/sqrt(d) logit scale with tf.constant, a float64
layer rounded it to float32, which put d = 2 and d = 8 up to 1e-8 off:
test_the_float64_layer_uses_the_exact_logit_scale.)
"""
import math

import numpy as np
import pytest
import tensorflow as tf

import attention_reference as reference
from gc_detection.layers import GlobalContextAttention

SHAPE = (2, 3, 4, 16)  # N, H, W, C: 12 tokens, C / bottleneck_ratio = 8
BOTTLENECK_RATIO = 2
STEP = 1e-3
TOLERANCE = 1e-9  # of the largest |finite difference| of the case


class _Array:
  """A weight as reference.blocks_of reads it: a name and a float64 value."""

  def __init__(self, name, value):
    self.name = name
    self.value = value

  def numpy(self):
    return self.value


class _Weights:
  """Stands in for the layer in reference.blocks_of, holding given values."""

  def __init__(self, num_layers, values):
    self.num_layers = num_layers
    self.weights = [_Array(name, value) for name, value in values.items()]


def _layer(num_heads, num_layers, use_residual, chunked):
  """A float64 layer with random (not zero) biases.

  Chunked: 12 tokens > chunk_threshold=4, chunks of 5 queries (the last one
  padded from 2).
  """
  return GlobalContextAttention(
      num_heads=num_heads, num_layers=num_layers,
      bottleneck_ratio=BOTTLENECK_RATIO, use_residual=use_residual,
      chunk_threshold=4 if chunked else None, chunk_size=5,
      bias_initializer=tf.keras.initializers.RandomNormal(stddev=0.5),
      dtype='float64')


def _reference_loss(values, num_layers, num_heads, use_residual, x, weights):
  """sum(output * weights) of the NumPy reference with the given layer weights.

  Args:
    values: {variable name: float64 array in the layer's layout}.
    x, weights: (N, H, W, C) float64.
  """
  blocks = reference.blocks_of(_Weights(num_layers, values))
  out, _ = reference.global_context(x, blocks, num_heads, use_residual)
  return float(np.sum(out * weights))


def _group_axes(name, ndim):
  """Axes whose every combination gets samples: Q/K/V part and head."""
  if name.endswith('/qkv_kernel:0'):  # (C, 3, h, d)
    return (1, 2)
  if name.endswith('/qkv_bias:0'):  # (3, h, d)
    return (0, 1)
  if name.endswith('/output_kernel:0'):  # (h, d, C)
    return (0,)
  assert ndim == 1, name  # output_bias (C,)
  return ()


def _sample_entries(shape, group_axes, per_group, rng):
  """Up to `per_group` random indices into `shape` for every group.

  A group is one combination of indices along `group_axes` (e.g. Q, K or V
  and the head), so a wrong gradient of the keys alone, or of one head
  alone, is always sampled.
  """
  groups = np.ndindex(*[shape[a] for a in group_axes])
  free_axes = [a for a in range(len(shape)) if a not in group_axes]
  free_size = int(np.prod([shape[a] for a in free_axes]))
  entries = []
  for group in groups:
    for flat in rng.choice(free_size, min(per_group, free_size), replace=False):
      free = np.unravel_index(flat, [shape[a] for a in free_axes])
      index = [0] * len(shape)
      for axis, value in zip(group_axes, group):
        index[axis] = value
      for axis, value in zip(free_axes, free):
        index[axis] = int(value)
      entries.append(tuple(index))
  return entries


def _finite_difference(loss, values, name, index):
  """Fourth-order central difference of loss(values) along values[name][index]."""
  def shifted(step):
    moved = dict(values)
    moved[name] = values[name].copy()
    moved[name][index] += step
    return loss(moved)
  return (8 * (shifted(STEP) - shifted(-STEP)) -
          (shifted(2 * STEP) - shifted(-2 * STEP))) / (12 * STEP)


@pytest.mark.parametrize(
    'num_layers, num_heads, chunked, training, use_residual', [
        (1, 1, False, True, True),
        (1, 4, True, True, False),
        (2, 4, False, True, False),
        (2, 1, True, True, True),
        (2, 2, True, False, True),  # chunked, without recompute_grad
        (1, 2, False, False, False),
    ])
def test_weight_gradients_match_float64_finite_differences(
    num_layers, num_heads, chunked, training, use_residual):
  """Tape gradients of sum(layer(x) * r) for x, r (2, 3, 4, 16) vs differences.

  Every variable of every block; per variable, up to 4 random entries for each
  (Q/K/V part, head) of qkv_kernel and qkv_bias, each head of output_kernel,
  and 6 of output_bias.
  """
  tf.keras.utils.set_random_seed(num_layers * 10 + num_heads)
  rng = np.random.default_rng(num_layers * 10 + num_heads)
  x = rng.normal(size=SHAPE)
  loss_weights = rng.normal(size=SHAPE)
  layer = _layer(num_heads, num_layers, use_residual, chunked)
  layer.build(SHAPE)
  if chunked:
    assert SHAPE[1] * SHAPE[2] > layer.chunk_threshold  # the chunked path
  with tf.GradientTape() as tape:
    out = layer(tf.constant(x), training=training)
    loss = tf.reduce_sum(out * loss_weights)
  variables = layer.trainable_weights
  assert len(variables) == 4 * num_layers
  gradients = {v.name: g.numpy()
               for v, g in zip(variables, tape.gradient(loss, variables))}
  assert all(g.dtype == np.float64 for g in gradients.values())

  values = {w.name: w.numpy().astype(np.float64) for w in layer.weights}

  def reference_loss(changed):
    return _reference_loss(changed, num_layers, num_heads, use_residual, x,
                           loss_weights)

  # The tape differentiates the function the differences are taken of (up to
  # the float32-rounded logit scale, see the module docstring).
  expected_loss = reference_loss(values)
  assert abs(float(loss) - expected_loss) <= TOLERANCE * abs(expected_loss), (
      f'layer loss {float(loss)!r} vs reference {expected_loss!r}')

  checked = []  # (name, index, tape gradient, finite difference)
  for variable in variables:
    name = variable.name
    per_group = 6 if name.endswith('/output_bias:0') else 4
    for index in _sample_entries(variable.shape, _group_axes(name, variable.shape.rank),
                                 per_group, rng):
      checked.append((name, index, gradients[name][index],
                      _finite_difference(reference_loss, values, name, index)))
  scale = max(abs(numerical) for _, _, _, numerical in checked)
  assert scale > 1.0  # a loss that depends on the weights
  failures = [f'{name}{list(index)}: tape {tape_value:.10g}, '
              f'finite difference {numerical:.10g}'
              for name, index, tape_value, numerical in checked
              if abs(tape_value - numerical) > TOLERANCE * scale]
  assert not failures, (
      f'{len(failures)} of {len(checked)} weight gradients differ from the '
      f'float64 finite differences by more than {TOLERANCE} x {scale:.3g}:\n' +
      '\n'.join(failures[:20]))
  # Every variable was checked, and none has an all-zero gradient (the key
  # bias alone has a zero gradient, by the softmax's shift invariance).
  assert {name for name, *_ in checked} == set(gradients)
  for name, gradient in gradients.items():
    assert np.abs(gradient).max() > 1e-3, f'{name} has no gradient'


def test_the_key_bias_gradient_is_zero():
  """The key bias adds q . b_k to every logit of a query: softmax ignores it.

  qkv_bias (3, h, d) of a float64 layer on (1, 3, 3, 16): its K part has a zero
  gradient, its Q and V parts do not. A mathematical fact, independent of the
  layer's code.
  """
  tf.keras.utils.set_random_seed(3)
  layer = _layer(num_heads=2, num_layers=1, use_residual=True, chunked=False)
  x = tf.constant(np.random.default_rng(3).normal(size=(1, 3, 3, 16)))
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(tf.sin(layer(x)))
  bias = [w for w in layer.trainable_weights if w.name.endswith('/qkv_bias:0')][0]
  gradient = tape.gradient(loss, bias).numpy()
  scale = np.abs(gradient).max()
  assert scale > 1e-2
  np.testing.assert_allclose(gradient[1], 0.0, atol=1e-12 * scale,
                             err_msg='key bias gradient')
  assert np.abs(gradient[0]).max() > 1e-3 * scale, 'query bias has no gradient'
  assert np.abs(gradient[2]).max() > 1e-3 * scale, 'value bias has no gradient'


def test_the_float64_layer_uses_the_exact_logit_scale():
  """A float64 layer with d = 8 (1/sqrt(8) is not a float32 number) on (2, 3, 4, 16).

  Its output equals the NumPy float64 reference to float64 accuracy.
  """
  tf.keras.utils.set_random_seed(4)
  layer = _layer(num_heads=1, num_layers=1, use_residual=False, chunked=False)
  x = np.random.default_rng(4).normal(size=SHAPE)
  out = layer(tf.constant(x)).numpy()
  assert layer.head_channels == 8
  assert np.float32(1 / math.sqrt(8)) != 1 / math.sqrt(8)
  expected, _ = reference.global_context(x, reference.blocks_of(layer), 1, False)
  error = np.abs(out - expected).max() / np.abs(expected).max()
  assert error <= 1e-13, f'float64 layer off the float64 reference by {error:.2g}'
