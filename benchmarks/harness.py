"""What every benchmark measures the same way: time, ratios, peak memory, FLOPs.

- `time_alternately`: candidates timed in interleaved rounds (A, B, A, B, ...)
  after warm-up, so machine drift hits all of them alike.
- `paired_ratio`: A / B of each round (the two ran back to back), reported as
  the median with its [min, max] range; `ratio_verdict` calls a target MET or
  MISSED only when the whole range is on one side of it ("within noise"
  otherwise); `share_verdict` is the one-sided time-share-vs-FLOP-share check.
- `measure_in_child` / `child_result`: one measurement in a fresh process,
  its peak resident memory (ru_maxrss) reported back as JSON.
- `module_flops`: the matmul FLOPs of GlobalContextAttention from the shapes,
  by stage; `profiled_flops` / `graph_flops`: what the TF profiler counts.
"""
import dataclasses
import json
import resource
import statistics
import subprocess
import sys
import time

MET, MISSED, WITHIN_NOISE = 'MET', 'MISSED', 'within noise'


# --- Time -------------------------------------------------------------------------


def time_alternately(calls, rounds, warmup=0):
  """Seconds of each zero-argument callable, called in interleaved rounds.

  Args:
    calls: name -> callable; each call must finish its work before returning
      (true of tf.function calls on the CPU, and of anything returning NumPy).
    rounds: timed calls of each callable; round i calls every one once, in
      the order of `calls`.
    warmup: untimed calls of each callable first (tracing, compilation).

  Returns:
    name -> list of `rounds` durations in seconds, round i at index i.
  """
  for call in calls.values():
    for _ in range(warmup):
      call()
  times = {name: [] for name in calls}
  for _ in range(rounds):
    for name, call in calls.items():
      start = time.perf_counter()
      call()
      times[name].append(time.perf_counter() - start)
  return times


def medians(samples):
  """name -> list of seconds  ->  name -> median seconds."""
  return {name: statistics.median(values) for name, values in samples.items()}


@dataclasses.dataclass(frozen=True)
class PairedRatio:
  """Per-round ratios of two candidates timed alternately: median and range."""
  median: float
  low: float
  high: float
  rounds: int

  def __str__(self):
    return f'{self.median:.3f} [{self.low:.3f}, {self.high:.3f}]'


def paired_ratio(numerators, denominators):
  """numerators[i] / denominators[i] of every round: PairedRatio.

  Raises:
    ValueError: the lists differ in length or are empty.
  """
  if len(numerators) != len(denominators) or not numerators:
    raise ValueError(f'paired_ratio needs two equally long, non-empty lists of '
                     f'rounds, got {len(numerators)} and {len(denominators)}')
  ratios = [a / b for a, b in zip(numerators, denominators)]
  return PairedRatio(statistics.median(ratios), min(ratios), max(ratios), len(ratios))


def ratio_verdict(ratio, target, at_least=False):
  """MET / MISSED / 'within noise' of `ratio` (a PairedRatio) against a target.

  The target is `ratio <= target` (or `>= target` with at_least). MET when the
  whole [min, max] range meets it, MISSED when none of it does; a range that
  straddles the target decides nothing.
  """
  low_meets = ratio.low >= target if at_least else ratio.low <= target
  high_meets = ratio.high >= target if at_least else ratio.high <= target
  if low_meets and high_meets:
    return MET
  if not low_meets and not high_meets:
    return MISSED
  return WITHIN_NOISE


def share_verdict(time_share, flop_share, factor):
  """MET unless the module's time share exceeds `factor` x its FLOP share.

  One-sided: a module faster per FLOP than the rest of the step (time share
  below its FLOP share) meets the target.
  """
  return MET if time_share <= factor * flop_share else MISSED


# --- Peak memory ------------------------------------------------------------------


def peak_rss_kib():
  """This process's peak resident set size so far (ru_maxrss), in KiB."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child_result(**fields):
  """In a measurement child: prints `fields` plus peak_kib as the last JSON line."""
  print(json.dumps(dict(fields, peak_kib=peak_rss_kib())), flush=True)


def measure_in_child(argv):
  """Runs `python argv...` in a fresh process; returns its child_result dict.

  Returns:
    The child's last stdout line as a dict (peak_kib and its own fields), or
    {'error': description} if it failed (an out-of-memory kill shows as
    signal 9).
  """
  completed = subprocess.run([sys.executable] + list(argv), capture_output=True,
                             text=True, check=False)
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


# --- FLOPs ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ModuleFlops:
  """Forward matmul FLOPs of GlobalContextAttention, by stage (all layers)."""
  qkv: int
  scores: int
  context: int
  output: int

  @property
  def total(self):
    return self.qkv + self.scores + self.context + self.output


def module_flops(tokens, channels, bottleneck_ratio=4, num_layers=1):
  """Forward matmul FLOPs of GlobalContextAttention over `tokens` positions.

  Per stacked layer, with D = channels / bottleneck_ratio (summed over heads,
  so the head count does not matter): QKV 2*L*C*3D, scores 2*L*L*D, context
  2*L*L*D, output 2*L*D*C. Softmax, biases, scaling and the residual are not
  counted, nor the padding of the last chunk on the chunked path.
  """
  key_channels = channels // bottleneck_ratio
  return ModuleFlops(
      qkv=num_layers * 2 * tokens * channels * 3 * key_channels,
      scores=num_layers * 2 * tokens * tokens * key_channels,
      context=num_layers * 2 * tokens * tokens * key_channels,
      output=num_layers * 2 * tokens * key_channels * channels)


# Op types whose FLOPs module_flops counts.
MATMUL_OP_TYPES = ['MatMul', 'BatchMatMul.*']


def graph_flops(graph, op_types=None):
  """Float operations the TF profiler counts in a graph.

  op_types: regexes of the op types to count (default: every op).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options['output'] = 'none'
  if op_types:
    options['account_type_regexes'] = op_types
  return tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops


def profiled_flops(function, *specs, op_types=None):
  """Float operations in the graph of a Python function traced for specs."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return graph_flops(tf.function(function).get_concrete_function(*specs).graph,
                     op_types)


def earlier_run(work_dir):
  """(results, settings, wall_seconds) a benchmark saved in work_dir
  (results.json and run.json), for --report_only; exits naming what is missing."""
  import os  # pylint: disable=g-import-not-at-top
  if not work_dir:
    sys.exit('--report_only needs the --work_dir of an earlier run')
  paths = [os.path.join(work_dir, name) for name in ('results.json', 'run.json')]
  for path in paths:
    if not os.path.isfile(path):
      sys.exit(f'--report_only: {path} is missing (not the work_dir of a finished run?)')
  with open(paths[0]) as results_file, open(paths[1]) as run_file:
    run_info = json.load(run_file)
    return json.load(results_file), run_info['settings'], run_info['wall_seconds']
