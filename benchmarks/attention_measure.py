r"""benchmarks/attention.py's measurements: the layer under test, its timings, memory.

One attention layer (C=1024, 4 heads, bottleneck 4: Q, K and V of 256
channels, 64 per head; batch 1), as GlobalContextAttention and as
tf.keras.layers.MultiHeadAttention with the same math. Every timing goes
through benchmarks/harness.py (candidates called in interleaved rounds).

Run as a program, it is the child of one peak-memory measurement:
  .venv/bin/python benchmarks/attention_measure.py '{"impl": "ours", "side": 128,
      "chunk_threshold": null}'
"""
import json
import os
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf

from gc_detection.layers import GlobalContextAttention
from gc_detection.layers import attention_ops
import harness  # benchmarks/ is on sys.path when run as a script
# pylint: enable=g-import-not-at-top,wrong-import-position

CHANNELS = 1024
NUM_HEADS = 4
BOTTLENECK_RATIO = 4
KEY_CHANNELS = CHANNELS // BOTTLENECK_RATIO
HEAD_CHANNELS = KEY_CHANNELS // NUM_HEADS
SIDES = (40, 64, 100)
TARGET_SIDE = 64
MEMORY_SIDE = 128
MATMUL_SIZE = 4096
DEFAULT_CHUNK_THRESHOLD = 4096  # GlobalContextAttention's default.
_START = time.perf_counter()


def progress(message):
  """Prints a progress line, with the seconds since start, to stderr."""
  print(f'[{time.perf_counter() - _START:6.1f} s] {message}', file=sys.stderr,
        flush=True)


def layer_flops(tokens):
  """harness.module_flops of the benchmarked layer over `tokens` tokens."""
  return harness.module_flops(tokens, CHANNELS, BOTTLENECK_RATIO)


# --- The implementations under test -----------------------------------------


def build_ours(side, chunk_threshold=DEFAULT_CHUNK_THRESHOLD):
  """A built GlobalContextAttention and a random (1, side, side, C) input."""
  layer = GlobalContextAttention(
      num_heads=NUM_HEADS, bottleneck_ratio=BOTTLENECK_RATIO,
      chunk_threshold=chunk_threshold)
  inputs = tf.random.normal([1, side, side, CHANNELS], seed=1)
  layer.build(inputs.shape)
  return layer, inputs


def build_mha(side):
  """A MultiHeadAttention + residual function with ours' math and a (1, L, C) input."""
  attention = tf.keras.layers.MultiHeadAttention(
      num_heads=NUM_HEADS, key_dim=HEAD_CHANNELS, value_dim=HEAD_CHANNELS,
      output_shape=CHANNELS)
  tokens = tf.random.normal([1, side * side, CHANNELS], seed=1)
  symbolic = tf.keras.Input(batch_size=1, shape=tokens.shape[1:])
  attention(symbolic, symbolic)  # Builds the weights without running them.

  def layer_fn(tokens, training):
    return tokens + attention(tokens, tokens, training=training)

  return layer_fn, attention, tokens


def forward_fn(layer_fn, jit_compile=False):
  """A tf.function running `layer_fn(inputs, training=False)`."""
  return tf.function(lambda inputs: layer_fn(inputs, training=False),
                     jit_compile=jit_compile, autograph=False)


def training_step_fn(layer_fn, variables, jit_compile=False):
  """A tf.function (inputs, upstream) -> gradients w.r.t. inputs and variables.

  `upstream` is the gradient of the loss w.r.t. the layer's output (a random
  tensor: a constant one would be folded into the graph by XLA).
  """

  def step(inputs, upstream):
    with tf.GradientTape() as tape:
      tape.watch(inputs)
      outputs = layer_fn(inputs, training=True)
    return tape.gradient(outputs, [inputs] + list(variables),
                         output_gradients=upstream)

  return tf.function(step, jit_compile=jit_compile, autograph=False)


def implementations(side, with_xla):
  """Name -> (forward fn, training-step fn, input, upstream gradient) of each timed."""
  layer, inputs = build_ours(side)
  mha_layer, mha, tokens = build_mha(side)
  upstream = tf.random.normal(inputs.shape, seed=2)
  impls = {
      'ours': (forward_fn(layer), training_step_fn(layer, layer.trainable_variables),
               inputs, upstream),
      'MHA': (forward_fn(mha_layer),
              training_step_fn(mha_layer, mha.trainable_variables), tokens,
              tf.reshape(upstream, tokens.shape)),
  }
  if with_xla:
    impls['ours XLA'] = (
        forward_fn(layer, jit_compile=True),
        training_step_fn(layer, layer.trainable_variables, jit_compile=True),
        inputs, upstream)
  return impls


# --- Time ----------------------------------------------------------------------


def matmul_call():
  """A zero-argument call of a MATMUL_SIZE-square float32 tf.matmul in a tf.function."""
  a = tf.random.normal([MATMUL_SIZE, MATMUL_SIZE], seed=1)
  b = tf.random.normal([MATMUL_SIZE, MATMUL_SIZE], seed=2)
  matmul = tf.function(tf.matmul, autograph=False)
  return lambda: matmul(a, b)


def matmul_gflops(seconds):
  """GFLOP/s of one MATMUL_SIZE-square matmul that took `seconds`."""
  return 2 * MATMUL_SIZE**3 / seconds / 1e9


def check_chunking():
  """Max abs difference of outputs and input gradients, chunked vs unchunked.

  A 12x12 map (144 tokens) with chunk_threshold=64 and chunk_size=64 takes the
  chunked path with a padded last chunk, in inference and in training.
  """
  inputs = tf.random.normal([1, 12, 12, CHANNELS], seed=3)
  chunked = GlobalContextAttention(num_heads=NUM_HEADS, chunk_size=64,
                                   chunk_threshold=64)
  unchunked = GlobalContextAttention(num_heads=NUM_HEADS, chunk_threshold=None)
  chunked.build(inputs.shape)
  unchunked.build(inputs.shape)
  unchunked.set_weights(chunked.get_weights())
  upstream = tf.random.normal(inputs.shape, seed=4)
  results = []
  for layer in (chunked, unchunked):
    output = forward_fn(layer)(inputs)
    gradient = training_step_fn(layer, [])(inputs, upstream)[0]
    results.append((output, gradient))
  return max(float(tf.reduce_max(tf.abs(a - b)))
             for a, b in zip(results[0], results[1]))


def time_sizes(repeats, warmup, with_xla):
  """Seconds of every round per size and implementation, forward and forward+backward.

  The large matmul joins the rounds of every forward measurement, so the
  matmul rate is measured under the same machine load as the attention.

  Returns:
    ({side: {'forward' | 'training': {implementation name: [seconds per round]}}},
     list of the matmul's durations in seconds).
  """
  results, matmul_seconds = {}, []
  matmul = matmul_call()
  for side in SIDES:
    impls = implementations(side, with_xla)
    forward_calls = {name: (lambda f=f, x=x: f(x))
                     for name, (f, _, x, _) in impls.items()}
    forward_calls['matmul'] = matmul
    forward = harness.time_alternately(forward_calls, repeats, warmup)
    matmul_seconds += forward.pop('matmul')
    training = harness.time_alternately(
        {name: (lambda s=s, x=x, u=u: s(x, u)) for name, (_, s, x, u) in impls.items()},
        repeats, warmup)
    results[side] = {'forward': forward, 'training': training}
    progress(f'timed {side}x{side}')
  return results, matmul_seconds


def stage_times(repeats, warmup):
  """Median seconds of each stage of the layer's forward pass at TARGET_SIDE.

  Each stage is the layer's own stage (GlobalContextAttention.project_qkv,
  split_heads, merge_heads, project_output and the module functions
  attention_scores, attention_probabilities, attended_values: what its
  unchunked path composes) in its own tf.function, on the inputs the stages
  before it computed; the stages are called in interleaved rounds.

  Returns:
    List of (stage name, seconds, matmul FLOPs).
  """
  layer, inputs = build_ours(TARGET_SIDE)
  tokens = tf.reshape(inputs, [1, TARGET_SIDE * TARGET_SIDE, CHANNELS])
  flops = layer_flops(TARGET_SIDE * TARGET_SIDE)
  stages = [
      ('QKV projection + bias (project_qkv)', layer.project_qkv, flops.qkv),
      ('split heads, scale queries (split_heads)', layer.split_heads, 0),
      ('scores q k^T (attention_scores)', attention_ops.attention_scores, flops.scores),
      ('softmax (attention_probabilities)', attention_ops.attention_probabilities, 0),
      ('context p v (attended_values)', attention_ops.attended_values, flops.context),
      ('merge heads (merge_heads)', layer.merge_heads, 0),
      ('output projection + bias (project_output), residual',
       lambda context, tokens: tokens + layer.project_output(context), flops.output),
  ]
  # Each stage's inputs, computed by the stages before it.
  qkv = layer.project_qkv(tokens)
  query, key, value = layer.split_heads(qkv)
  scores = attention_ops.attention_scores(query, key)
  probabilities = attention_ops.attention_probabilities(scores)
  context = attention_ops.attended_values(probabilities, value)
  arguments = [(tokens,), (qkv,), (query, key), (scores,), (probabilities, value),
               (context,), (layer.merge_heads(context), tokens)]
  calls = {}
  for (name, function, _), args in zip(stages, arguments):
    compiled = tf.function(function, autograph=False)
    calls[name] = lambda c=compiled, a=args: c(*a)
  seconds = harness.medians(harness.time_alternately(calls, repeats, warmup))
  return [(name, seconds[name], stage_flops) for name, _, stage_flops in stages]


# --- Memory ----------------------------------------------------------------------


def child_main(spec):
  """Runs one training step of one configuration; reports its memory (harness).

  Args:
    spec: {'impl': 'ours' | 'MHA', 'side': int, 'chunk_threshold': int | None}.
  """
  tf.get_logger().setLevel('ERROR')
  if spec['impl'] == 'ours':
    layer, inputs = build_ours(spec['side'], spec['chunk_threshold'])
    step = training_step_fn(layer, layer.trainable_variables)
  else:
    layer_fn, mha, inputs = build_mha(spec['side'])
    step = training_step_fn(layer_fn, mha.trainable_variables)
  baseline_kib = harness.peak_rss_kib()
  upstream = tf.random.normal(inputs.shape, seed=2)
  start = time.perf_counter()
  step(inputs, upstream)
  harness.child_result(baseline_kib=baseline_kib, seconds=time.perf_counter() - start)


def memory_results(quick):
  """Peak memory of every configuration measured, each in a fresh process.

  Returns:
    {(impl, side, chunk_threshold): child result (harness.measure_in_child)}.
  """
  specs = [('ours', MEMORY_SIDE, DEFAULT_CHUNK_THRESHOLD), ('ours', MEMORY_SIDE, None)]
  if not quick:
    specs += [(impl, side, DEFAULT_CHUNK_THRESHOLD)
              for side in SIDES for impl in ('ours', 'MHA')]
  results = {}
  for impl, side, threshold in specs:
    results[(impl, side, threshold)] = harness.measure_in_child([
        os.path.abspath(__file__),
        json.dumps({'impl': impl, 'side': side, 'chunk_threshold': threshold})])
    progress(f'peak memory of {impl} {side}x{side} chunk_threshold={threshold}')
  return results


if __name__ == '__main__':
  child_main(json.loads(sys.argv[1]))
