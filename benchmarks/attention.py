r"""Benchmarks GlobalContextAttention against tf.keras.layers.MultiHeadAttention.

Measures one attention block (C=1024, 4 heads, bottleneck 4: Q, K and V of 256
channels, 64 per head; batch 1) on 40x40, 64x64 and 100x100 token maps (640,
1024 and 1600 px images at stride 16):

  * forward and forward+backward median wall time, in graph mode (tf.function),
    of GlobalContextAttention with its defaults (chunked above 4096 tokens) and
    of MultiHeadAttention(num_heads=4, key_dim=64, value_dim=64,
    output_shape=1024) applied as self-attention to the (1, H*W, C) tokens plus
    the residual add, i.e. the same math and FLOPs. The implementations run in
    turn (ours, MHA, ours, MHA, ...) so machine noise hits both alike; the
    full run also times ours under XLA (tf.function(jit_compile=True));
  * achieved GFLOP/s (FLOPs counted analytically from the shapes) and its share
    of the machine's float32 matmul rate (median of a 4096-square tf.matmul
    timed in turn with the forward passes, so under the same load);
  * the time of each stage of our forward pass at 64x64, run one at a time;
  * peak resident memory of one forward+backward training step, each in a
    fresh child process: ours vs MHA at the three sizes, and ours chunked
    (chunk_threshold=4096) vs unchunked (chunk_threshold=None) at 128x128;
  * the issue's targets, each MET or MISSED.

Before timing it checks that the chunked and unchunked paths of the layer agree
(outputs and input gradients), so the chunked path timed is the right one.

Usage, from the checkout root (on an otherwise idle 2-core machine the default
run takes about 5 minutes, --quick under 2):
  .venv/bin/python benchmarks/attention.py [--quick] [--markdown BENCHMARKS.md]
(--markdown rewrites the "attention" section of that file, see
benchmarks/markdown_report.py)
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf

from gc_detection.layers import GlobalContextAttention
import markdown_report  # benchmarks/ is on sys.path when run as a script
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

TARGET_SPEEDUP = 1.3
TARGET_MATMUL_SHARE = 0.40
TARGET_MEMORY_RATIO = 0.5


def parse_args(argv):
  """Parses the command line."""
  parser = argparse.ArgumentParser(
      description=__doc__.split('\n', 1)[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument(
      '--quick', action='store_true',
      help='3 timed repetitions instead of 7, one warm-up call instead of 2, '
      'no XLA column, and peak memory only at 128x128 (chunked vs unchunked).')
  parser.add_argument(
      '--repeats', type=int, default=None,
      help='Timed repetitions per measurement (default: 7, or 3 with --quick).')
  parser.add_argument(
      '--markdown', metavar='PATH', default=None,
      help='Also write the tables as the "attention" section of this Markdown '
      'file (BENCHMARKS.md), replacing the previous run.')
  # Internal: one peak-memory measurement, run by the parent in a fresh process.
  parser.add_argument('--child', default=None, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.repeats is None:
    args.repeats = 3 if args.quick else 7
  if args.repeats < 1:
    parser.error('--repeats must be at least 1')
  args.warmup = 1 if args.quick else 2
  return args


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
  """A built MultiHeadAttention block with ours' math and a (1, L, C) input."""
  attention = tf.keras.layers.MultiHeadAttention(
      num_heads=NUM_HEADS, key_dim=HEAD_CHANNELS, value_dim=HEAD_CHANNELS,
      output_shape=CHANNELS)
  tokens = tf.random.normal([1, side * side, CHANNELS], seed=1)
  symbolic = tf.keras.Input(batch_size=1, shape=tokens.shape[1:])
  attention(symbolic, symbolic)  # Builds the weights without running them.

  def block(tokens, training):
    return tokens + attention(tokens, tokens, training=training)

  return block, attention, tokens


def forward_fn(block, jit_compile=False):
  """A tf.function running `block(inputs, training=False)`."""
  return tf.function(lambda inputs: block(inputs, training=False),
                     jit_compile=jit_compile, autograph=False)


def training_step_fn(block, variables, jit_compile=False):
  """A tf.function (inputs, upstream) -> gradients w.r.t. inputs and variables.

  `upstream` is the gradient of the loss w.r.t. the block's output (a random
  tensor: a constant one would be folded into the graph by XLA).
  """

  def step(inputs, upstream):
    with tf.GradientTape() as tape:
      tape.watch(inputs)
      outputs = block(inputs, training=True)
    return tape.gradient(outputs, [inputs] + list(variables),
                         output_gradients=upstream)

  return tf.function(step, jit_compile=jit_compile, autograph=False)


def implementations(side, with_xla):
  """Name -> (forward fn, training-step fn, input, upstream gradient) of each timed."""
  layer, inputs = build_ours(side)
  mha_block, mha, tokens = build_mha(side)
  upstream = tf.random.normal(inputs.shape, seed=2)
  impls = {
      'ours': (forward_fn(layer), training_step_fn(layer, layer.trainable_variables),
               inputs, upstream),
      'MHA': (forward_fn(mha_block),
              training_step_fn(mha_block, mha.trainable_variables), tokens,
              tf.reshape(upstream, tokens.shape)),
  }
  if with_xla:
    impls['ours XLA'] = (
        forward_fn(layer, jit_compile=True),
        training_step_fn(layer, layer.trainable_variables, jit_compile=True),
        inputs, upstream)
  return impls


# --- Measurements ------------------------------------------------------------


def progress(message):
  """Prints a progress line, with the seconds since start, to stderr."""
  print(f'[{time.perf_counter() - _START:6.1f} s] {message}', file=sys.stderr,
        flush=True)


def attention_flops(tokens):
  """Forward matmul FLOPs of one block over `tokens` tokens, by stage."""
  return {
      'qkv': 2 * tokens * CHANNELS * 3 * KEY_CHANNELS,
      'scores': 2 * NUM_HEADS * tokens * tokens * HEAD_CHANNELS,
      'context': 2 * NUM_HEADS * tokens * tokens * HEAD_CHANNELS,
      'output': 2 * tokens * KEY_CHANNELS * CHANNELS,
  }


def sample_times(calls, repeats, warmup):
  """Seconds of each zero-argument callable, called in round-robin.

  Args:
    calls: name -> callable; each call must finish its work before returning
      (true of tf.function calls on the CPU in synchronous eager mode).
    repeats: timed calls of each callable.
    warmup: untimed calls of each callable first (tracing, compilation).

  Returns:
    name -> list of `repeats` durations in seconds.
  """
  for call in calls.values():
    for _ in range(warmup):
      call()
  times = {name: [] for name in calls}
  for _ in range(repeats):
    for name, call in calls.items():
      start = time.perf_counter()
      call()
      times[name].append(time.perf_counter() - start)
  return times


def medians(samples):
  """name -> list of seconds  ->  name -> median seconds."""
  return {name: statistics.median(values) for name, values in samples.items()}


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
  """Median seconds per size and implementation, forward and forward+backward.

  The large matmul joins the round-robin of every forward measurement, so the
  matmul rate is measured under the same machine load as the attention.

  Returns:
    ({side: {'forward' | 'training': {implementation name: median seconds}}},
     list of the matmul's durations in seconds).
  """
  results, matmul_seconds = {}, []
  matmul = matmul_call()
  for side in SIDES:
    impls = implementations(side, with_xla)
    forward_calls = {name: (lambda f=f, x=x: f(x))
                     for name, (f, _, x, _) in impls.items()}
    forward_calls['matmul'] = matmul
    forward = sample_times(forward_calls, repeats, warmup)
    matmul_seconds += forward.pop('matmul')
    training = sample_times({name: (lambda s=s, x=x, u=u: s(x, u))
                             for name, (_, s, x, u) in impls.items()},
                            repeats, warmup)
    results[side] = {'forward': medians(forward), 'training': medians(training)}
    progress(f'timed {side}x{side}')
  return results, matmul_seconds


def stage_times(repeats, warmup):
  """Median seconds of each stage of the forward math at TARGET_SIDE, one at a time.

  The stages are those of GlobalContextAttention's unchunked path (one fused
  QKV matmul, heads split by a transpose, scores, softmax, context, heads
  merged, output projection and residual), each in its own tf.function on
  precomputed inputs, with random weights of the block's shapes.

  Returns:
    List of (stage name, seconds, matmul FLOPs).
  """
  length = TARGET_SIDE * TARGET_SIDE
  flops = attention_flops(length)
  tokens = tf.random.normal([1, length, CHANNELS], seed=1)
  qkv_kernel = tf.random.normal([CHANNELS, 3 * KEY_CHANNELS], stddev=0.03, seed=2)
  qkv_bias = tf.zeros([3 * KEY_CHANNELS])
  output_kernel = tf.random.normal([KEY_CHANNELS, CHANNELS], stddev=0.05, seed=3)
  output_bias = tf.zeros([CHANNELS])

  def split_heads(qkv):
    qkv = tf.reshape(qkv, [1, length, 3, NUM_HEADS, HEAD_CHANNELS])
    query, key, value = tf.unstack(tf.transpose(qkv, [2, 0, 3, 1, 4]))
    return query * (1.0 / HEAD_CHANNELS**0.5), key, value

  def merge_heads(context):
    return tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [1, length, KEY_CHANNELS])

  stages = [
      ('QKV projection + bias',
       lambda t: tf.nn.bias_add(tf.matmul(t, qkv_kernel), qkv_bias), flops['qkv']),
      ('split heads (transpose, scale)', split_heads, 0),
      ('scores q k^T', lambda q, k: tf.matmul(q, k, transpose_b=True),
       flops['scores']),
      ('softmax', lambda s: tf.nn.softmax(s, axis=-1), 0),
      ('context p v', tf.matmul, flops['context']),
      ('merge heads (transpose)', merge_heads, 0),
      ('output projection + bias + residual', lambda c, t: t + tf.nn.bias_add(
          tf.matmul(c, output_kernel), output_bias), flops['output']),
  ]
  # Each stage's inputs, computed by the stages before it.
  qkv = stages[0][1](tokens)
  query, key, value = split_heads(qkv)
  scores = tf.matmul(query, key, transpose_b=True)
  probabilities = tf.nn.softmax(scores, axis=-1)
  context = tf.matmul(probabilities, value)
  arguments = [(tokens,), (qkv,), (query, key), (scores,), (probabilities, value),
               (context,), (merge_heads(context), tokens)]
  calls = {}
  for (name, function, _), args in zip(stages, arguments):
    compiled = tf.function(function, autograph=False)
    calls[name] = lambda c=compiled, a=args: c(*a)
  seconds = medians(sample_times(calls, repeats, warmup))
  return [(name, seconds[name], stage_flops) for name, _, stage_flops in stages]


def child_main(spec):
  """Runs one training step of one configuration and prints its memory as JSON.

  Args:
    spec: {'impl': 'ours' | 'MHA', 'side': int, 'chunk_threshold': int | None}.
  """
  if spec['impl'] == 'ours':
    layer, inputs = build_ours(spec['side'], spec['chunk_threshold'])
    step = training_step_fn(layer, layer.trainable_variables)
  else:
    block, mha, inputs = build_mha(spec['side'])
    step = training_step_fn(block, mha.trainable_variables)
  baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  upstream = tf.random.normal(inputs.shape, seed=2)
  start = time.perf_counter()
  step(inputs, upstream)
  seconds = time.perf_counter() - start
  peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  print(json.dumps({'baseline_kib': baseline_kib, 'peak_kib': peak_kib,
                    'seconds': seconds}))


def peak_memory(spec):
  """Peak RSS of one training step of `spec` in a fresh process.

  Returns:
    The child's JSON result, or {'error': description} if it failed (an
    out-of-memory kill shows as signal 9).
  """
  completed = subprocess.run(
      [sys.executable, os.path.abspath(__file__), '--child', json.dumps(spec)],
      capture_output=True, text=True, check=False)
  if completed.returncode != 0:
    if completed.returncode < 0:
      reason = f'killed by signal {-completed.returncode}'
      if completed.returncode == -9:
        reason += ' (out of memory?)'
    else:
      reason = f'exit status {completed.returncode}'
    tail = completed.stderr.strip().splitlines()[-1:] or ['']
    return {'error': f'{reason} {tail[0][:100]}'.strip()}
  return json.loads(completed.stdout.strip().splitlines()[-1])


def memory_results(quick):
  """Peak memory of every configuration measured, in child processes.

  Returns:
    {(impl, side, chunk_threshold): child result}.
  """
  specs = [('ours', MEMORY_SIDE, DEFAULT_CHUNK_THRESHOLD), ('ours', MEMORY_SIDE, None)]
  if not quick:
    specs += [(impl, side, DEFAULT_CHUNK_THRESHOLD)
              for side in SIDES for impl in ('ours', 'MHA')]
  results = {}
  for impl, side, threshold in specs:
    results[(impl, side, threshold)] = peak_memory(
        {'impl': impl, 'side': side, 'chunk_threshold': threshold})
    progress(f'peak memory of {impl} {side}x{side} chunk_threshold={threshold}')
  return results


# --- Reporting ---------------------------------------------------------------


def machine_description(matmul_seconds):
  """Rows (key, value) describing the machine, the software and its matmul rate."""
  return markdown_report.machine_rows() + [
      ('float32 matmul rate',
       f'{matmul_gflops(statistics.median(matmul_seconds)):.0f} GFLOP/s: median '
       f'of {len(matmul_seconds)} {MATMUL_SIZE}x{MATMUL_SIZE}x{MATMUL_SIZE} '
       'tf.matmul calls made in turn with the forward timings (range '
       f'{matmul_gflops(max(matmul_seconds)):.0f}-'
       f'{matmul_gflops(min(matmul_seconds)):.0f})'),
  ]


def speed_table(times, mode, matmul_rate):
  """Rows of the forward or forward+backward timing table."""
  rows = []
  for side, result in times.items():
    length = side * side
    gflop = sum(attention_flops(length).values()) / 1e9 * (
        3 if mode == 'training' else 1)
    seconds = result[mode]
    row = [f'{side}x{side}', length,
           'chunked' if length > DEFAULT_CHUNK_THRESHOLD else 'unchunked',
           f'{gflop:.1f}']
    for name in ('ours', 'MHA', 'ours XLA'):
      if name not in seconds:
        row += ['-', '-', '-']
        continue
      rate = gflop / seconds[name]
      row += [f'{seconds[name] * 1e3:.0f}', f'{rate:.0f}',
              f'{100 * rate / matmul_rate:.0f}%']
    row.append(f'{seconds["MHA"] / seconds["ours"]:.2f}x')
    rows.append(row)
  return rows


SPEED_HEADERS = ['tokens', 'L', 'ours path', 'GFLOP',
                 'ours ms', 'GFLOP/s', '% mm', 'MHA ms', 'GFLOP/s', '% mm',
                 'XLA ms', 'GFLOP/s', '% mm', 'MHA/ours']


def stage_table(stages, forward_seconds):
  """Rows of the stage breakdown table, plus a total row."""
  total = sum(seconds for _, seconds, _ in stages)
  rows = []
  for name, seconds, flops in stages:
    rows.append([name, f'{seconds * 1e3:.1f}', f'{100 * seconds / total:.0f}%',
                 f'{flops / 1e9:.2f}' if flops else '-',
                 f'{flops / 1e9 / seconds:.0f}' if flops else '-'])
  all_flops = sum(flops for _, _, flops in stages)
  rows.append(['sum of stages', f'{total * 1e3:.1f}', '100%',
               f'{all_flops / 1e9:.2f}', f'{all_flops / 1e9 / total:.0f}'])
  rows.append(['whole layer (forward table)', f'{forward_seconds * 1e3:.1f}', '',
               f'{all_flops / 1e9:.2f}', f'{all_flops / 1e9 / forward_seconds:.0f}'])
  return rows


def mib(kib):
  """KiB -> MiB string."""
  return f'{kib / 1024:.0f}'


def memory_cells(result):
  """[peak MiB, increment MiB] of a child result, or the error twice."""
  if 'error' in result:
    return [f'FAILED: {result["error"]}', '-']
  return [mib(result['peak_kib']), mib(step_kib(result))]


def step_kib(result):
  """The training step's peak-memory increment of a child result, in KiB."""
  return result['peak_kib'] - result['baseline_kib']


def memory_size_table(memory):
  """Rows of ours vs MHA peak memory at the timed sizes (empty if not measured)."""
  rows = []
  for side in SIDES:
    ours = memory.get(('ours', side, DEFAULT_CHUNK_THRESHOLD))
    mha = memory.get(('MHA', side, DEFAULT_CHUNK_THRESHOLD))
    if ours is None:
      continue
    ratio = '-'
    if 'error' not in ours and 'error' not in mha:
      ratio = f'{step_kib(ours) / step_kib(mha):.2f}'
    rows.append([f'{side}x{side}'] + memory_cells(ours) + memory_cells(mha) + [ratio])
  return rows


def chunking_table(memory):
  """Rows of chunked vs unchunked peak memory at MEMORY_SIDE."""
  rows = []
  for label, threshold in (
      (f'chunked (chunk_threshold={DEFAULT_CHUNK_THRESHOLD}, chunk_size=1024)',
       DEFAULT_CHUNK_THRESHOLD),
      ('unchunked (chunk_threshold=None)', None)):
    result = memory[('ours', MEMORY_SIDE, threshold)]
    seconds = '-' if 'error' in result else f'{result["seconds"]:.1f}'
    rows.append([label] + memory_cells(result) + [seconds])
  return rows


def memory_ratio(memory):
  """Chunked / unchunked training peak-memory increment at MEMORY_SIDE, or None."""
  chunked = memory[('ours', MEMORY_SIDE, DEFAULT_CHUNK_THRESHOLD)]
  unchunked = memory[('ours', MEMORY_SIDE, None)]
  if 'error' in chunked or 'error' in unchunked:
    return None
  return step_kib(chunked) / step_kib(unchunked)


def target_table(times, memory, matmul_rate):
  """Rows (target, measured, MET / MISSED) of the issue's targets."""
  forward = times[TARGET_SIDE]['forward']
  speedup = forward['MHA'] / forward['ours']
  gflop = sum(attention_flops(TARGET_SIDE**2).values()) / 1e9
  share = gflop / forward['ours'] / matmul_rate
  ratio = memory_ratio(memory)

  def verdict(met):
    return 'MET' if met else 'MISSED'

  side = f'{TARGET_SIDE}x{TARGET_SIDE}'
  return [
      [f'forward {side}: MHA time / ours >= {TARGET_SPEEDUP}', f'{speedup:.2f}x',
       verdict(speedup >= TARGET_SPEEDUP)],
      [f'forward {side}: ours >= {TARGET_MATMUL_SHARE:.0%} of matmul rate',
       f'{share:.0%}', verdict(share >= TARGET_MATMUL_SHARE)],
      [f'training peak memory {MEMORY_SIDE}x{MEMORY_SIDE}: chunked <= '
       f'{TARGET_MEMORY_RATIO} x unchunked',
       'not measured (a child failed)' if ratio is None else f'{ratio:.3f}',
       'MISSED' if ratio is None else verdict(ratio <= TARGET_MEMORY_RATIO)],
  ]


def text_table(headers, rows):
  """A plain-text table with aligned columns."""
  cells = [list(map(str, headers))] + [list(map(str, row)) for row in rows]
  widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
  lines = ['  '.join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
           for row in cells]
  lines.insert(1, '  '.join('-' * width for width in widths))
  return '\n'.join(lines)


def report_sections(args, matmul_seconds, max_diff, times, stages, memory):
  """The report as a list of (title, headers, rows, notes)."""
  matmul_rate = matmul_gflops(statistics.median(matmul_seconds))
  sections = [
      ('Machine', ['item', 'value'], machine_description(matmul_seconds), [
          f'Command: benchmarks/attention.py {" ".join(sys.argv[1:])}'.rstrip(),
          f'Correctness guard: ours chunked vs unchunked (12x12 map, chunks of 64 '
          f'tokens), max |difference| of outputs and input gradients = '
          f'{max_diff:.2e} (must be < 1e-4).']),
  ]
  speed_notes = [
      f'Median of {args.repeats} calls after {args.warmup} warm-up call(s), '
      'graph mode (tf.function), batch 1, C=1024, 4 heads of 64, '
      'implementations called in turn. Ours = GlobalContextAttention with its '
      f'defaults (chunked above {DEFAULT_CHUNK_THRESHOLD} tokens). '
      'MHA = tf.keras.layers.MultiHeadAttention('
      'num_heads=4, key_dim=64, value_dim=64, output_shape=1024) on the (1, L, C) '
      'tokens + residual. XLA = ours under tf.function(jit_compile=True) '
      '(full run only).',
      'GFLOP = matmul FLOPs of the math, from the shapes: QKV 2*L*C*3D + scores '
      '2*h*L*L*d + context 2*h*L*L*d + output 2*L*D*C (D=256, d=64); softmax, '
      'bias and residual not counted; the padding of the last chunk and the '
      'recomputation of chunks in the backward pass are not counted either.',
      '% mm = achieved GFLOP/s as a share of the machine\'s float32 matmul rate '
      f'({matmul_rate:.0f} GFLOP/s). MHA/ours > 1 means ours is faster.',
  ]
  sections.append(('Forward', SPEED_HEADERS,
                   speed_table(times, 'forward', matmul_rate), speed_notes))
  sections.append((
      'Forward + backward (gradients w.r.t. the input and all weights, '
      'training=True)', SPEED_HEADERS,
      speed_table(times, 'training', matmul_rate),
      ['GFLOP = 3 x forward: the backward pass of each matmul costs two '
       'matmuls of the forward size. Ours above 4096 tokens also recomputes '
       'each chunk\'s scores, softmax and context in the backward pass (about '
       '4 x forward work), which the GFLOP/s column does not credit.']))
  sections.append((
      f'Where the forward time goes: ours at {TARGET_SIDE}x{TARGET_SIDE}, '
      'each stage alone', ['stage', 'ms', 'share', 'GFLOP', 'GFLOP/s'],
      stage_table(stages, times[TARGET_SIDE]['forward']['ours']),
      ['Each stage is the op(s) of the layer\'s unchunked path in its own '
       'tf.function on precomputed inputs (random weights of the block\'s '
       'shapes). The sum differs from the whole layer by the per-call overhead '
       'and by what the runtime overlaps or fuses within one graph.']))
  size_rows = memory_size_table(memory)
  memory_notes = [
      'Peak resident set size (ru_maxrss) of a fresh process that builds the '
      'block and runs one forward+backward training step in a tf.function; '
      '"step" = peak minus the process\'s peak before the step (TF imported, '
      'layer built, input made). MiB.']
  if size_rows:
    sections.append((
        'Peak memory, forward + backward: ours vs MHA',
        ['tokens', 'ours peak', 'ours step', 'MHA peak', 'MHA step',
         'ours/MHA step'], size_rows, memory_notes))
  sections.append((
      f'Peak memory, forward + backward: ours chunked vs unchunked at '
      f'{MEMORY_SIDE}x{MEMORY_SIDE} ({MEMORY_SIDE**2} tokens)',
      ['configuration', 'peak MiB', 'step MiB', 'step s (incl. tracing)'],
      chunking_table(memory),
      memory_notes + ['One (1, 4, 16384, 16384) float32 score tensor is 4 GiB.']))
  sections.append(('Targets', ['target', 'measured', 'verdict'],
                   target_table(times, memory, matmul_rate),
                   ['The memory target compares the step increments (peak minus '
                    'the pre-step baseline).']))
  return sections


def print_report(sections, markdown_path):
  """Prints the sections as text; writes them as Markdown to markdown_path."""
  text, markdown = [], ['## GlobalContextAttention layer']
  for title, headers, rows, notes in sections:
    text += ['', title, '=' * len(title), text_table(headers, rows)]
    text += [f'* {note}' for note in notes]
    markdown += ['', f'### {title}', '',
                 markdown_report.markdown_table(headers, rows), '']
    markdown += ['- ' + note.replace('*', r'\*') for note in notes]
  print('\n'.join(text))
  if markdown_path:
    markdown_report.replace_section(markdown_path, 'attention', '\n'.join(markdown))


def main(argv):
  args = parse_args(argv)
  tf.get_logger().setLevel('ERROR')
  if args.child:
    child_main(json.loads(args.child))
    return 0
  max_diff = check_chunking()
  if not max_diff < 1e-4:
    print(f'FAILED: chunked and unchunked differ by {max_diff:.2e}',
          file=sys.stderr)
    return 1
  # Memory first, while this process holds no large tensors.
  memory = memory_results(args.quick)
  times, matmul_seconds = time_sizes(args.repeats, args.warmup,
                                     with_xla=not args.quick)
  stages = stage_times(args.repeats, args.warmup)
  progress('stage breakdown timed')
  print_report(report_sections(args, matmul_seconds, max_diff, times, stages, memory),
               args.markdown)
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
