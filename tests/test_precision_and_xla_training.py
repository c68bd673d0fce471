"""The chunked attention path in training: mixed precision, XLA, Faster R-CNN.

The layer tests use a (2, 4, 5, 32) map: 20 tokens, 2 blocks of 2 heads
(C / bottleneck_ratio = 8, d = 4). Chunked means chunk_threshold=8 and
chunk_size=6: four chunks of queries, the last one padded from 2 to 6, each
recomputed in the backward pass (training=True). The loss of a step is
sum(float32(output) * r) for a fixed random r (2, 4, 5, 32).

The independent reference is the NumPy float64 implementation
(attention_reference.py): its output, and its weight gradients by central
finite differences over every weight entry (weight gradients of the layer in
float64 match such differences to 1e-7, test_layer_weight_gradients.py).
"""
import contextlib

import re

import numpy as np
from object_detection import model_lib_v2
from object_detection.builders import model_builder
from object_detection.core import standard_fields as fields
import pytest
import tensorflow as tf

import attention_reference as reference
import tiny_configs
from gc_detection.layers import GlobalContextAttention

SHAPE = (2, 4, 5, 32)
NUM_HEADS, NUM_LAYERS = 2, 2
CHUNK_THRESHOLD, CHUNK_SIZE = 8, 6
FINITE_DIFFERENCE_STEP = 1e-5


@contextlib.contextmanager
def _global_policy(name):
  """Sets the Keras global dtype policy; float32 again afterwards."""
  tf.keras.mixed_precision.set_global_policy(name)
  try:
    yield
  finally:
    tf.keras.mixed_precision.set_global_policy('float32')


def _relative_error(actual, expected):
  actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
  return np.abs(actual - expected).max() / np.abs(expected).max()


def _layer(chunked, **kwargs):
  """A layer in the global policy with random (not zero) biases."""
  return GlobalContextAttention(
      num_heads=NUM_HEADS, num_layers=NUM_LAYERS,
      chunk_threshold=CHUNK_THRESHOLD if chunked else None, chunk_size=CHUNK_SIZE,
      bias_initializer=tf.keras.initializers.RandomNormal(stddev=0.5), **kwargs)


class _Array:
  """A weight as reference.blocks_of reads it: a name and a float64 value."""

  def __init__(self, name, value):
    self.name = name
    self.value = value

  def numpy(self):
    return self.value


class _Weights:
  """Stands in for a layer in reference.blocks_of, holding given values."""

  def __init__(self, values):
    self.num_layers = NUM_LAYERS
    self.weights = [_Array(name, value) for name, value in values.items()]


def _reference_output(values, x):
  """The NumPy float64 output (N, H, W, C) for weights {name: array}."""
  out, _ = reference.global_context(x, reference.blocks_of(_Weights(values)),
                                    NUM_HEADS)
  return out


def _reference_gradients(values, x, loss_weights):
  """d sum(output * loss_weights) / d weight, by central differences in float64.

  Args:
    values: {variable name: float64 array in the layer's layout}.
    x, loss_weights: (N, H, W, C).

  Returns:
    {variable name: float64 array of the variable's shape}.
  """
  def loss(changed):
    return np.sum(_reference_output(changed, x) * loss_weights)

  gradients = {}
  for name, value in values.items():
    gradient = np.zeros_like(value)
    for index in np.ndindex(*value.shape):
      moved = dict(values)
      moved[name] = value.copy()
      moved[name][index] += FINITE_DIFFERENCE_STEP
      plus = loss(moved)
      moved[name][index] -= 2 * FINITE_DIFFERENCE_STEP
      gradient[index] = (plus - loss(moved)) / (2 * FINITE_DIFFERENCE_STEP)
    gradients[name] = gradient
  return gradients


def _values(layer):
  return {w.name: w.numpy().astype(np.float64) for w in layer.weights}


@pytest.fixture(scope='module')
def case():
  """Float32 weights, inputs and the float64 reference of one layer.

  Returns a dict: weights (get_weights() list), names (variable names in that
  order), x and loss_weights (SHAPE, float32), output (SHAPE, float64) and
  gradients ({name: float64 array}).
  """
  with _global_policy('float32'):
    tf.keras.utils.set_random_seed(7)
    layer = _layer(chunked=False)
    layer.build(SHAPE)
  rng = np.random.default_rng(7)
  x = (rng.normal(size=SHAPE) * 0.5).astype(np.float32)
  loss_weights = rng.normal(size=SHAPE).astype(np.float32)
  values = _values(layer)
  return dict(weights=layer.get_weights(), names=[w.name for w in layer.weights],
              x=x, loss_weights=loss_weights,
              output=_reference_output(values, x.astype(np.float64)),
              gradients=_reference_gradients(values, x.astype(np.float64),
                                             loss_weights.astype(np.float64)))


def _layer_like(case, chunked, **kwargs):
  layer = _layer(chunked, **kwargs)
  layer.build(SHAPE)
  layer.set_weights(case['weights'])
  assert [w.name for w in layer.weights] == case['names']
  return layer


def _forward_and_gradients(layer, x, loss_weights):
  """One training forward pass and the gradients of the loss w.r.t. the weights."""
  with tf.GradientTape() as tape:
    out = layer(tf.constant(x), training=True)
    loss = tf.reduce_sum(tf.cast(out, tf.float32) * loss_weights)
  return out, dict(zip([v.name for v in layer.trainable_weights],
                       tape.gradient(loss, layer.trainable_weights)))


# Tolerance: 5 units in the last place of the compute dtype (float16: 2**-10,
# bfloat16: 2**-7), relative to the largest magnitude. Measured: the chunked
# and unchunked forward passes are identical, and up to 1.0 unit off the
# float64 reference; their gradients differ by up to 1.7 (float16) and 1.1
# (bfloat16) units (the chunks sum the key and value gradients in another
# order), and either is up to 2.0 units off the float64 reference. Wrong
# gradients on the chunked path are off by 0.2 (the last, padded chunk's
# queries without a gradient) to 1 (the keys or values without a gradient).
@pytest.mark.parametrize('policy, compute_dtype, tolerance', [
    ('mixed_float16', tf.float16, 5 * 2.0**-10),
    ('mixed_bfloat16', tf.bfloat16, 5 * 2.0**-7),
])
def test_chunked_mixed_precision_training_matches_unchunked_and_float64(
    case, policy, compute_dtype, tolerance):
  """Forward (2, 4, 5, 32) and the 8 weight gradients of a training step.

  Chunked and unchunked layers with the same float32 weights, under `policy`.
  """
  assert SHAPE[1] * SHAPE[2] > CHUNK_THRESHOLD  # the chunked layer chunks
  results = {}
  with _global_policy(policy):
    for chunked in (False, True):
      layer = _layer_like(case, chunked)
      assert layer.compute_dtype == compute_dtype.name
      assert all(w.dtype == tf.float32 for w in layer.weights), (
          'variables must stay float32 under a mixed policy')
      out, gradients = _forward_and_gradients(layer, case['x'],
                                              case['loss_weights'])
      assert out.dtype == compute_dtype, f'chunked={chunked}: output {out.dtype}'
      assert len(gradients) == 4 * NUM_LAYERS
      for name, gradient in gradients.items():
        assert gradient.dtype == tf.float32, f'{name}: gradient {gradient.dtype}'
        assert np.all(np.isfinite(gradient.numpy())), (
            f'chunked={chunked}: {name} has non-finite gradients')
      results[chunked] = (out.numpy().astype(np.float64),
                          {k: g.numpy() for k, g in gradients.items()})
  assert tf.keras.mixed_precision.global_policy().name == 'float32'

  (out_full, gradients_full), (out_chunked, gradients_chunked) = (
      results[False], results[True])
  error = _relative_error(out_chunked, out_full)
  assert error <= tolerance, f'{policy}: chunked vs unchunked output {error:.3g}'
  for name, out in (('unchunked', out_full), ('chunked', out_chunked)):
    error = _relative_error(out, case['output'])
    assert error <= tolerance, f'{policy}: {name} output vs float64 {error:.3g}'
  for name, expected in case['gradients'].items():
    error = _relative_error(gradients_chunked[name], gradients_full[name])
    assert error <= tolerance, (
        f'{policy}: {name} chunked vs unchunked gradient {error:.3g} > {tolerance:.3g}')
    for path, gradients in (('unchunked', gradients_full),
                            ('chunked', gradients_chunked)):
      error = _relative_error(gradients[name], expected)
      assert error <= tolerance, (
          f'{policy}: {path} {name} gradient vs float64 {error:.3g} > {tolerance:.3g}')


LEARNING_RATE, MOMENTUM = 0.01, 0.9


def _train_step(layer, optimizer):
  """Forward, tape.gradient and an SGD apply; returns (loss, gradients)."""
  def step(x, loss_weights):
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(layer(x, training=True) * loss_weights)
    gradients = tape.gradient(loss, layer.trainable_weights)
    optimizer.apply_gradients(zip(gradients, layer.trainable_weights))
    return loss, gradients
  return step


def test_xla_compiled_chunked_training_step_equals_the_eager_step(case):
  """Two SGD-with-momentum steps on (2, 4, 5, 32), chunked, in float32.

  One layer is trained eagerly, an identical one by a tf.function with
  jit_compile=True around forward + tape.gradient + apply_gradients. The
  compiled step's losses, gradients and updated weights equal the eager ones;
  the first step's gradients and update also equal the float64 reference's.
  """
  x = tf.constant(case['x'])
  loss_weights = tf.constant(case['loss_weights'])
  with _global_policy('float32'):
    eager_layer = _layer_like(case, chunked=True)
    xla_layer = _layer_like(case, chunked=True)
    eager_step = _train_step(eager_layer,
                             tf.keras.optimizers.SGD(LEARNING_RATE, MOMENTUM))
    xla_step = tf.function(_train_step(
        xla_layer, tf.keras.optimizers.SGD(LEARNING_RATE, MOMENTUM)),
                           jit_compile=True)
    names = [v.name for v in eager_layer.trainable_weights]
    for step in (1, 2):
      eager_loss, eager_gradients = eager_step(x, loss_weights)
      xla_loss, xla_gradients = xla_step(x, loss_weights)
      assert abs(float(xla_loss) - float(eager_loss)) <= 1e-5 * abs(float(eager_loss)), (
          f'step {step}: XLA loss {float(xla_loss)} vs eager {float(eager_loss)}')
      for name, eager, compiled in zip(names, eager_gradients, xla_gradients):
        assert np.all(np.isfinite(compiled.numpy())), f'step {step}: {name}'
        error = _relative_error(compiled, eager)
        assert error <= 1e-5, f'step {step}: {name} XLA vs eager gradient {error:.3g}'
        if step == 1:
          error = _relative_error(compiled, case['gradients'][name])
          assert error <= 1e-5, f'{name}: XLA gradient vs float64 {error:.3g}'
      # The weights moved by the same amounts since the start.
      for eager, compiled, initial in zip(eager_layer.weights, xla_layer.weights,
                                          case['weights']):
        initial = initial.astype(np.float64)
        error = _relative_error(compiled.numpy() - initial, eager.numpy() - initial)
        assert error <= 1e-5, (
            f'step {step}: {eager.name} XLA vs eager weight update {error:.3g}')
        if step == 1:  # -learning_rate * the float64 reference gradient
          error = _relative_error(compiled.numpy() - initial,
                                  -LEARNING_RATE * case['gradients'][eager.name])
          assert error <= 1e-5, f'{eager.name}: XLA update vs float64 {error:.3g}'
    # The compiled program is XLA's and contains the chunk loop (the unchunked
    # layer's has no while loop).
    assert xla_step.get_concrete_function(
        x, loss_weights).function_def.attr['_XlaMustCompile'].b
    hlo = xla_step.experimental_get_compiler_ir(x, loss_weights)(stage='hlo')
    assert ' while(' in hlo, 'no chunk loop in the compiled training step'


FRCNN_SIZE = 64


def _faster_rcnn_inputs(model, batch=1, size=FRCNN_SIZE):
  """Preprocessed (batch, size, size, 3) random images and two boxes each."""
  images = tf.random.uniform([batch, size, size, 3], 0, 255, seed=1)
  features = {
      fields.InputDataFields.image: model.preprocess(images)[0],
      fields.InputDataFields.true_image_shape: tf.constant([[size, size, 3]] * batch),
  }
  labels = {
      fields.InputDataFields.num_groundtruth_boxes: tf.constant([2] * batch),
      fields.InputDataFields.groundtruth_boxes: tf.constant(
          [[[0.1, 0.1, 0.5, 0.4], [0.4, 0.5, 0.9, 0.9]]] * batch),
      fields.InputDataFields.groundtruth_classes: tf.one_hot([[1, 5]] * batch, 90),
      fields.InputDataFields.groundtruth_weights: tf.ones([batch, 2]),
  }
  return features, labels


def _graph_nodes(concrete_function):
  """Every NodeDef of a concrete function, nested function bodies included."""
  graph_def = concrete_function.graph.as_graph_def()
  nodes = list(graph_def.node)
  for function in graph_def.library.function:
    nodes.extend(function.node_def)
  return nodes


def test_faster_rcnn_gc_bfloat16_training_step_compiles_with_xla(tmp_path):
  """Faster R-CNN R-50 + GC, two training steps in one XLA program, bfloat16.

  faster_rcnn_resnet50_v1_gc_600x1024_coco.config at 64x64 px: images
  (1, 64, 64, 3), two boxes; the module refines C4 (1, 4, 4, 1024): 16 tokens,
  with chunk_threshold 8 and chunk_size 6 the chunked path, three chunks.
  Under the mixed_bfloat16 policy, as the RetinaNet test does for SSD.

  Compiled by XLA (tf.function(jit_compile=True), which raises rather than
  falls back when an op cannot be compiled): the whole stock
  model_lib_v2.eager_train_step, i.e. ResNet-50 up to C4, the GC module, the
  RPN, first-stage NMS, proposal sampling and target assignment, the
  crop-and-resize of the proposals, the conv5 box classifier, every loss,
  tape.gradient and the momentum-SGD apply. Not compiled: model building and
  model.preprocess (the resize and normalisation the stock trainer does in its
  input pipeline), run eagerly before the step.

  It compiles because the shipped config uses the OD API's static-shape
  options (use_static_shapes, use_static_balanced_label_sampler,
  use_matmul_gather_in_matcher, use_matmul_crop_and_resize): NMS pads to a
  fixed number of proposals and sampling and gathering are dense. Measured
  without them: with use_static_shapes, use_static_balanced_label_sampler and
  use_matmul_gather_in_matcher false, the first-stage NMS is
  tf.image.non_max_suppression_with_scores, a NonMaxSuppressionV5 op (output
  size data-dependent) with no XLA kernel: "Detected unsupported operations
  ... NonMaxSuppressionV5 (No registered 'NonMaxSuppressionV5' OpKernel for
  XLA_CPU_JIT devices ...)". With use_matmul_crop_and_resize false,
  tf.image.crop_and_resize rejects the bfloat16 feature map while tracing
  (TypeError), with or without XLA.
  """
  configs = tiny_configs.configs(
      tiny_configs.FRCNN_GC_R50, FRCNN_SIZE, tmp_path,
      block=('num_heads: 4 num_layers: 1 initialization: GLOROT '
             f'chunk_threshold: {CHUNK_THRESHOLD} chunk_size: {CHUNK_SIZE}'))
  assert configs['model'].faster_rcnn.feature_extractor.type == (
      'faster_rcnn_resnet50_gc')
  configs['train_config'].use_bfloat16 = True
  frcnn = configs['model'].faster_rcnn
  assert (frcnn.use_static_shapes and frcnn.use_static_balanced_label_sampler and
          frcnn.use_matmul_gather_in_matcher and frcnn.use_matmul_crop_and_resize)
  # Few, small crops: the box classifier on each crop dominates the step.
  frcnn.first_stage_max_proposals, frcnn.second_stage_batch_size = 8, 4
  frcnn.initial_crop_size = 6
  # The policy train_loop sets for use_bfloat16. eager_train_step sets the
  # Keras learning phase globally: the scope restores it afterwards.
  with _global_policy('mixed_bfloat16'), tf.keras.backend.learning_phase_scope(1):
    model = model_builder.build(configs['model'], is_training=True)
    optimizer = tf.keras.optimizers.SGD(1e-3, momentum=0.9)
    features, labels = _faster_rcnn_inputs(model)
    # Variables first (one eager forward pass, as the stock trainer's
    # fine-tune restore does), so that tf.function traces the step only once.
    model.provide_groundtruth(
        groundtruth_boxes_list=tf.unstack(
            labels[fields.InputDataFields.groundtruth_boxes]),
        groundtruth_classes_list=tf.unstack(
            labels[fields.InputDataFields.groundtruth_classes]))
    model.predict(features[fields.InputDataFields.image],
                  features[fields.InputDataFields.true_image_shape])
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=True)
    def train_step(features, labels):
      return model_lib_v2.eager_train_step(
          model, features, labels, unpad_groundtruth_tensors=True,
          optimizer=optimizer, training_step=optimizer.iterations)

    concrete = train_step.get_concrete_function(features, labels)
    assert concrete.function_def.attr['_XlaMustCompile'].b
    gc_layer = model._feature_extractor.global_context  # pylint: disable=protected-access
    assert isinstance(gc_layer, GlobalContextAttention)
    before = [v.numpy().copy() for v in model.trainable_variables]
    gc_before = [v.numpy().copy() for v in gc_layer.trainable_weights]
    all_losses = [train_step(features, labels) for _ in range(2)]
    assert train_step.experimental_get_tracing_count() == 1  # one program, run twice

  for step, losses in enumerate(all_losses, start=1):
    values = {name: float(value) for name, value in losses.items()}
    assert all(np.isfinite(v) for v in values.values()), f'step {step}: {values}'
    assert values['Loss/total_loss'] > 0, f'step {step}: {values}'

  # The module computes in bfloat16 (its matmuls in the compiled graph), its
  # softmax in float32, on the chunked path (a while loop), from float32
  # variables.
  assert gc_layer.compute_dtype == 'bfloat16' and gc_layer.dtype == 'float32'
  assert gc_layer.channels == 1024 and len(gc_layer.trainable_weights) == 4
  assert all(v.dtype == tf.float32 for v in gc_layer.weights)
  scope = f'/{gc_layer.name}/'
  gc_nodes = [node for node in _graph_nodes(concrete) if scope in node.name]
  matmul_types = {tf.dtypes.as_dtype(node.attr['T'].type)
                  for node in gc_nodes if node.op == 'BatchMatMulV2'}
  softmax_types = {tf.dtypes.as_dtype(node.attr['T'].type)
                   for node in gc_nodes if node.op == 'Softmax'}
  assert matmul_types == {tf.bfloat16}, f'GC matmuls in {matmul_types}'
  assert softmax_types == {tf.float32}, f'GC softmax in {softmax_types}'
  assert any(f'{scope}map/while' in node.name for node in gc_nodes), (
      'the GC module did not take the chunked path')

  # The step trained: every GC variable moved and stayed finite, and so did
  # the rest of the model.
  for variable, initial in zip(gc_layer.trainable_weights, gc_before):
    value = variable.numpy()
    assert np.all(np.isfinite(value)), f'{variable.name} is not finite'
    assert not np.array_equal(value, initial), f'{variable.name} did not change'
  # Only the second stage's box-encoding head may stay where it was, when no
  # sampled proposal is positive (its loss, the box classifier's localization
  # loss, is then 0).
  unchanged = [v.name for v, initial in zip(model.trainable_variables, before)
               if np.array_equal(v.numpy(), initial)]
  no_box_loss = all(float(losses['Loss/BoxClassifierLoss/localization_loss']) == 0
                    for losses in all_losses)
  # (Keras numbers the layer names of later models in the process: _73.)
  explained = [name for name in unchanged if no_box_loss and re.search(
      r'mask_rcnn_box_head(_\d+)?/BoxEncodingPredictor', name)]
  assert unchanged == explained, (
      f'{len(unchanged)} of {len(before)} trainable variables did not change: '
      f'{unchanged}')
