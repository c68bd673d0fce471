r"""Benchmarks GlobalContextAttention against tf.keras.layers.MultiHeadAttention.

Measures one attention layer (C=1024, 4 heads, bottleneck 4: Q, K and V of 256
channels, 64 per head; batch 1) on 40x40, 64x64 and 100x100 token maps (640,
1024 and 1600 px images at stride 16):

  * forward and forward+backward median wall time, in graph mode (tf.function),
    of GlobalContextAttention with its defaults (chunked above 4096 tokens) and
    of MultiHeadAttention(num_heads=4, key_dim=64, value_dim=64,
    output_shape=1024) applied as self-attention to the (1, H*W, C) tokens plus
    the residual add, i.e. the same math and FLOPs. The implementations run in
    interleaved rounds (ours, MHA, ours, MHA, ...; benchmarks/harness.py) so
    machine noise hits both alike, and MHA / ours is the median of the
    per-round ratios with their [min, max] range; the full run also times
    ours under XLA (tf.function(jit_compile=True));
  * achieved GFLOP/s (FLOPs counted analytically from the shapes) and its share
    of the machine's float32 matmul rate (median of a 4096-square tf.matmul
    timed in turn with the forward passes, so under the same load);
  * the time of each stage of our forward pass at 64x64, run one at a time
    (the layer's own stage methods and functions, on precomputed inputs);
  * peak resident memory of one forward+backward training step, each in a
    fresh child process: ours vs MHA at the three sizes, and ours chunked
    (chunk_threshold=4096) vs unchunked (chunk_threshold=None) at 128x128;
  * the issue's targets, each MET or MISSED (a speed ratio whose range
    straddles its target is "within noise").

Before timing it checks that the chunked and unchunked paths of the layer agree
(outputs and input gradients), so the chunked path timed is the right one.

Usage, from the checkout root (on an otherwise idle 2-core machine the default
run takes about 5 minutes, --quick under 2):
  .venv/bin/python benchmarks/attention.py [--quick] [--markdown BENCHMARKS.md]
(--markdown rewrites the "attention" section of that file, see
benchmarks/markdown_report.py; the measurements are in
benchmarks/attention_measure.py)
"""
import argparse
import statistics
import sys

# benchmarks/ is on sys.path when run as a script.
import attention_measure as measure
from attention_measure import DEFAULT_CHUNK_THRESHOLD, MEMORY_SIDE, SIDES, TARGET_SIDE
import harness
import markdown_report
from gc_detection.reports.markdown import markdown_table

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
  args = parser.parse_args(argv)
  if args.repeats is None:
    args.repeats = 3 if args.quick else 7
  if args.repeats < 1:
    parser.error('--repeats must be at least 1')
  args.warmup = 1 if args.quick else 2
  return args


# --- Reporting ---------------------------------------------------------------


def machine_description(matmul_seconds):
  """Rows (key, value) describing the machine, the software and its matmul rate."""
  gflops = measure.matmul_gflops
  size = measure.MATMUL_SIZE
  return markdown_report.machine_rows() + [
      ('float32 matmul rate',
       f'{gflops(statistics.median(matmul_seconds)):.0f} GFLOP/s: median '
       f'of {len(matmul_seconds)} {size}x{size}x{size} '
       'tf.matmul calls made in turn with the forward timings (range '
       f'{gflops(max(matmul_seconds)):.0f}-{gflops(min(matmul_seconds)):.0f})'),
  ]


def speed_table(times, mode, matmul_rate):
  """Rows of the forward or forward+backward timing table."""
  rows = []
  for side, result in times.items():
    length = side * side
    gflop = measure.layer_flops(length).total / 1e9 * (3 if mode == 'training' else 1)
    rounds = result[mode]
    seconds = harness.medians(rounds)
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
    row.append(f'{harness.paired_ratio(rounds["MHA"], rounds["ours"])}x')
    rows.append(row)
  return rows


SPEED_HEADERS = ['tokens', 'L', 'ours path', 'GFLOP',
                 'ours ms', 'GFLOP/s', '% mm', 'MHA ms', 'GFLOP/s', '% mm',
                 'XLA ms', 'GFLOP/s', '% mm', 'MHA / ours per round: median [min, max]']


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


def step_kib(result):
  """The training step's peak-memory increment of a child result, in KiB."""
  return result['peak_kib'] - result['baseline_kib']


def memory_cells(result):
  """[peak MiB, increment MiB] of a child result, or the error and '-'."""
  if 'error' in result:
    return [f'FAILED: {result["error"]}', '-']
  return [f'{result["peak_kib"] / 1024:.0f}', f'{step_kib(result) / 1024:.0f}']


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
  """Rows (target, measured, verdict) of the issue's targets."""
  forward = times[TARGET_SIDE]['forward']
  speedup = harness.paired_ratio(forward['MHA'], forward['ours'])
  gflop = measure.layer_flops(TARGET_SIDE**2).total / 1e9
  share = gflop / statistics.median(forward['ours']) / matmul_rate
  ratio = memory_ratio(memory)

  def verdict(met):
    return harness.MET if met else harness.MISSED

  side = f'{TARGET_SIDE}x{TARGET_SIDE}'
  return [
      [f'forward {side}: MHA time / ours >= {TARGET_SPEEDUP}', f'{speedup}x',
       harness.ratio_verdict(speedup, TARGET_SPEEDUP, at_least=True)],
      [f'forward {side}: ours >= {TARGET_MATMUL_SHARE:.0%} of matmul rate',
       f'{share:.0%}', verdict(share >= TARGET_MATMUL_SHARE)],
      [f'training peak memory {MEMORY_SIDE}x{MEMORY_SIDE}: chunked <= '
       f'{TARGET_MEMORY_RATIO} x unchunked',
       'not measured (a child failed)' if ratio is None else f'{ratio:.3f}',
       harness.MISSED if ratio is None else verdict(ratio <= TARGET_MEMORY_RATIO)],
  ]


def report_sections(args, matmul_seconds, max_diff, times, stages, memory):
  """The report as a list of (title, headers, rows, notes)."""
  matmul_rate = measure.matmul_gflops(statistics.median(matmul_seconds))
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
      'implementations called in interleaved rounds. Ours = GlobalContextAttention '
      f'with its defaults (chunked above {DEFAULT_CHUNK_THRESHOLD} tokens). '
      'MHA = tf.keras.layers.MultiHeadAttention('
      'num_heads=4, key_dim=64, value_dim=64, output_shape=1024) on the (1, L, C) '
      'tokens + residual. XLA = ours under tf.function(jit_compile=True) '
      '(full run only).',
      'GFLOP = matmul FLOPs of the math, from the shapes (benchmarks/harness.py '
      'module_flops): QKV 2*L*C*3D + scores 2*L*L*D + context 2*L*L*D + output '
      '2*L*D*C (D=256); softmax, bias and residual not counted; the padding of '
      'the last chunk and the recomputation of chunks in the backward pass are '
      'not counted either.',
      '% mm = achieved GFLOP/s as a share of the machine\'s float32 matmul rate '
      f'({matmul_rate:.0f} GFLOP/s). MHA / ours: the ratio of each round (MHA '
      'and ours called back to back), median and [min, max]; > 1 means ours is '
      'faster.',
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
      stage_table(stages, statistics.median(times[TARGET_SIDE]['forward']['ours'])),
      ['Each stage is the layer\'s own stage method or function (named in '
       'brackets; what its unchunked path composes) in its own tf.function on '
       'precomputed inputs, stages called in interleaved rounds. The sum '
       'differs from the whole layer by the per-call overhead and by what the '
       'runtime overlaps or fuses within one graph.']))
  size_rows = memory_size_table(memory)
  memory_notes = [
      'Peak resident set size (ru_maxrss) of a fresh process that builds the '
      'layer and runs one forward+backward training step in a tf.function; '
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
                    'the pre-step baseline). A speed ratio is MET or MISSED only '
                    'when its whole per-round range is on one side of the '
                    'target, "within noise" otherwise.']))
  return sections


def render(sections):
  """The report as BENCHMARKS.md's "attention" section (Markdown)."""
  markdown = ['## GlobalContextAttention layer']
  for title, headers, rows, notes in sections:
    markdown += ['', f'### {title}', '', markdown_table(headers, rows), '']
    markdown += ['- ' + note.replace('*', r'\*') for note in notes]
  return '\n'.join(markdown)


def main(argv):
  args = parse_args(argv)
  measure.tf.get_logger().setLevel('ERROR')
  max_diff = measure.check_chunking()
  if not max_diff < 1e-4:
    print(f'FAILED: chunked and unchunked differ by {max_diff:.2e}',
          file=sys.stderr)
    return 1
  # Memory first, while this process holds no large tensors.
  memory = measure.memory_results(args.quick)
  times, matmul_seconds = measure.time_sizes(args.repeats, args.warmup,
                                             with_xla=not args.quick)
  stages = measure.stage_times(args.repeats, args.warmup)
  measure.progress('stage breakdown timed')
  text = render(report_sections(args, matmul_seconds, max_diff, times, stages, memory))
  print(text)
  if args.markdown:
    markdown_report.replace_section(args.markdown, 'attention', text)
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
