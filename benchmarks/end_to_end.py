r"""What global context costs end to end: stock vs GC detectors, side by side.

For each model pair (Faster R-CNN R-50, RetinaNet R-50 FPN), input size and
batch size it measures, stock and GC alternately in one run:

- training step time: the OD API's own `eager_train_step` in a tf.function, as
  the stock trainer runs it (benchmarks/train_step.py builds it), stock and GC
  in interleaved rounds after warm-up (benchmarks/harness.py); GC / stock is
  the median of the per-round ratios with its [min, max] range;
- the GC module's share of that step: its forward + backward on the same
  feature-map shape, timed alone, as a share of the GC model's step;
- the module's share of the training step's FLOPs: the TF profiler on the
  traced stock and GC steps, with the module's forward count from the shapes
  (harness.module_flops) cross-checked against the profiler; the FLOP ratio
  is the floor the time ratio can reach;
- peak resident memory of a training step, each model in a fresh process;
- the module's share of the op time inside a profiled GC step, and for a
  step that misses its target, the layers whose op time differs most between
  stock and GC (benchmarks/step_profile.py);
- latency of the stock-exported SavedModel (benchmarks/inference_latency.py);
- the issue's targets, each MET or MISSED; a ratio whose per-round range
  straddles its target is "within noise".

Usage (the default matrix takes about 50 minutes on an idle 2-core machine):
  .venv/bin/python benchmarks/end_to_end.py [--pairs=faster_rcnn_r50,retinanet_r50] \
      [--sizes=640,1024] [--batches=1,2] [--rounds=5] [--markdown=BENCHMARKS.md]
  --markdown rewrites the "end_to_end" section of that file.
  --quick: one size (256), batch 1, 2 rounds: checks that everything runs.
"""
import functools
import json
import os
import subprocess
import sys
import tempfile

from absl import app
from absl import flags

# benchmarks/ is on sys.path when run as a script.
import harness
import markdown_report
from model_pairs import PAIRS
from gc_detection.reports.markdown import markdown_table

# Stride and channels of the map the module refines, per meta architecture.
MODULE_INPUT = {'faster_rcnn': (16, 1024), 'ssd': (32, 2048)}


def _define_flags():
  """Defines the command-line flags (only when run as a program)."""
  flags.DEFINE_list('pairs', list(PAIRS), 'Model pairs to compare.')
  flags.DEFINE_list('sizes', ['640', '1024'], 'Square input sizes.')
  flags.DEFINE_list('batches', ['1', '2'], 'Training batch sizes.')
  flags.DEFINE_integer('rounds', 5, 'Timed steps per model.')
  flags.DEFINE_integer('warmup', 2, 'Untimed steps per model (tracing).')
  flags.DEFINE_bool('quick', False, 'One small size, batch 1, 2 rounds.')
  flags.DEFINE_bool('skip_memory', False, 'Do not measure peak memory.')
  flags.DEFINE_bool('skip_inference', False, 'Do not export and time inference.')
  flags.DEFINE_string('markdown', None, 'Also write the report as the '
                      '"end_to_end" section of this Markdown file (BENCHMARKS.md).')
  flags.DEFINE_integer('latency_rounds', 10, 'Timed calls per exported model.')
  flags.DEFINE_string('child', None, 'Internal: JSON spec of a memory child.')
  flags.DEFINE_string('measure', None, 'Internal: JSON spec of a measurement child.')


# --- FLOPs ----------------------------------------------------------------------


def training_step_flops(run):
  """Float operations of a traced training step (build_train_step's result)."""
  run()  # traces the step and creates the variables
  return harness.graph_flops(run.tf_function.get_concrete_function().graph)


@functools.lru_cache(maxsize=None)
def profiled_module_flops(gc_config, size):
  """(module forward matmul FLOPs by the profiler, the same from the shapes).

  Per image and independent of the batch: cached across batch sizes.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from train_step import load_model_config  # pylint: disable=g-import-not-at-top
  from gc_detection.layers import global_context_settings as settings_lib  # pylint: disable=g-import-not-at-top

  model_config = load_model_config(gc_config, size)
  stride, channels = MODULE_INPUT[model_config.WhichOneof('model')]
  settings = settings_lib.GlobalContextSettings()
  layer = settings_lib.make_global_context_layer(settings, channels)
  side = -(-size // stride)
  feature_spec = tf.TensorSpec([1, side, side, channels], tf.float32)
  profiled = harness.profiled_flops(lambda features: layer(features), feature_spec,
                                    op_types=harness.MATMUL_OP_TYPES)
  return profiled, harness.module_flops(side * side, channels, settings.bottleneck_ratio,
                                        settings.num_layers).total


# --- Time -------------------------------------------------------------------------


def module_step(gc_config, size, batch):
  """A zero-argument function: the module's forward + backward, as in training."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from train_step import load_model_config  # pylint: disable=g-import-not-at-top
  from gc_detection.layers import global_context_settings as settings_lib  # pylint: disable=g-import-not-at-top

  model_config = load_model_config(gc_config, size)
  stride, channels = MODULE_INPUT[model_config.WhichOneof('model')]
  layer = settings_lib.make_global_context_layer(settings_lib.GlobalContextSettings(),
                                                 channels)
  side = -(-size // stride)
  features = tf.random.normal([batch, side, side, channels], seed=1)
  upstream = tf.random.normal([batch, side, side, channels], seed=2)
  layer(features)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      tape.watch(features)
      outputs = layer(features, training=True)
    return tape.gradient(outputs, [features] + layer.trainable_variables,
                         output_gradients=upstream)[0]
  return step


# --- Memory -----------------------------------------------------------------------


def child_main(spec):
  """Runs training steps of one model; reports its peak RSS (harness)."""
  from train_step import build_train_step  # pylint: disable=g-import-not-at-top
  step = build_train_step(spec['config'], spec['size'], spec['batch'])
  for _ in range(2):
    step()
  harness.child_result()


def peak_memory_kib(config, size, batch):
  """Peak RSS of a fresh process running two training steps; None on failure."""
  spec = json.dumps({'config': config, 'size': size, 'batch': batch})
  result = harness.measure_in_child([os.path.abspath(__file__), f'--child={spec}'])
  return result.get('peak_kib')


# --- Report -----------------------------------------------------------------------

# The targets: training step GC / stock per (pair, size), exported
# latency GC / stock at 640, and the module's time share at most 1.5x its
# FLOP share (one-sided: a module faster per FLOP than the rest meets it).
TRAIN_TARGETS = {('faster_rcnn_r50', 640): 1.05, ('faster_rcnn_r50', 1024): 1.10,
                 ('retinanet_r50', 640): 1.05, ('retinanet_r50', 1024): 1.05}
LATENCY_TARGET = (640, 1.05)
SHARE_TARGET = 1.5


def module_op_share(op_times):
  """Share of the GC step's summed op time spent in the module's ops."""
  import step_profile  # pylint: disable=g-import-not-at-top
  groups = step_profile.by_group(op_times)
  return groups[step_profile.MODULE_GROUP] / sum(groups.values())


class Results:
  """Rows of the report's tables, filled as the measurements come in."""

  TABLES = ('train', 'share', 'memory', 'latency', 'targets', 'profiles')

  def __init__(self):
    for table in self.TABLES:
      setattr(self, table, [])

  def as_dict(self):
    return {table: getattr(self, table) for table in self.TABLES}

  def extend(self, tables):
    for table in self.TABLES:
      getattr(self, table).extend(tables[table])


def measure_training(pair, size, batch, rounds, warmup, results):
  """Times, FLOPs and the op profile of stock vs GC training steps."""
  import step_profile  # pylint: disable=g-import-not-at-top
  from train_step import build_train_step  # pylint: disable=g-import-not-at-top

  stock_config, gc_config = PAIRS[pair]
  module, from_shapes = profiled_module_flops(gc_config, size)
  steps = {'stock': build_train_step(stock_config, size, batch),
           'gc': build_train_step(gc_config, size, batch),
           'module': module_step(gc_config, size, batch)}
  stock_flops = training_step_flops(steps['stock'])
  gc_flops = training_step_flops(steps['gc'])
  samples = harness.time_alternately(steps, rounds, warmup)
  medians = harness.medians(samples)
  ratio = harness.paired_ratio(samples['gc'], samples['stock'])
  target = TRAIN_TARGETS.get((pair, size))
  label = f'{size}x{size}'
  results.train.append([pair, label, batch, f'{medians["stock"] * 1e3:.0f}',
                        f'{medians["gc"] * 1e3:.0f}', str(ratio)])
  verdict = harness.ratio_verdict(ratio, target) if target else None
  if target:
    results.targets.append([f'training step {pair} {label} batch {batch}: GC / '
                            f'stock <= {target}', str(ratio), verdict])

  op_times = {name: step_profile.op_times_ms(steps[name]) for name in ('stock', 'gc')}
  in_graph_share = module_op_share(op_times['gc'])
  time_share = medians['module'] / medians['gc']
  # Training: forward + backward = 3x the forward matmuls (the backward
  # needs two matmuls per forward one).
  module_train = 3 * from_shapes * batch
  flop_share = module_train / gc_flops
  floor = (stock_flops + module_train) / stock_flops
  results.share.append([
      pair, label, batch, f'{module / 1e9:.2f}', f'{from_shapes / 1e9:.2f}',
      f'{stock_flops / 1e9:.1f}', f'{gc_flops / 1e9:.1f}',
      f'{module_train / 1e9:.1f}', f'{floor:.3f}', f'{flop_share:.1%}',
      f'{time_share:.1%}', f'{in_graph_share:.1%}',
      f'{time_share / flop_share:.2f}'])
  results.targets.append([
      f'module {pair} {label} batch {batch}: time share <= {SHARE_TARGET}x '
      'its FLOP share', f'{time_share / flop_share:.2f}x',
      harness.share_verdict(time_share, flop_share, SHARE_TARGET)])
  if target and verdict != harness.MET:
    stock_groups = step_profile.by_group(op_times['stock'])
    gc_groups = step_profile.by_group(op_times['gc'])
    rows = [[name, f'{stock:.0f}', f'{gc:.0f}', f'{gc - stock:+.0f}'] for name, stock, gc
            in step_profile.largest_differences(stock_groups, gc_groups)]
    rows.append(['all ops', f'{sum(stock_groups.values()):.0f}',
                 f'{sum(gc_groups.values()):.0f}',
                 f'{sum(gc_groups.values()) - sum(stock_groups.values()):+.0f}'])
    results.profiles.append((f'{pair} {label} batch {batch} (GC / stock {ratio}, '
                             f'FLOP floor {floor:.3f})', rows))
  print(f'{pair} {size} batch {batch}: step GC/stock {ratio} (floor '
        f'{floor:.3f}), module time share {time_share:.1%} alone, '
        f'{in_graph_share:.1%} in the step, FLOP share {flop_share:.1%}', flush=True)


def measure_memory(pair, size, batch, results):
  stock_config, gc_config = PAIRS[pair]
  stock_kib = peak_memory_kib(stock_config, size, batch)
  gc_kib = peak_memory_kib(gc_config, size, batch)
  results.memory.append([
      pair, f'{size}x{size}', batch,
      f'{stock_kib / 1024:.0f}' if stock_kib else 'failed',
      f'{gc_kib / 1024:.0f}' if gc_kib else 'failed',
      f'{gc_kib / stock_kib:.3f}' if stock_kib and gc_kib else '-'])


def measure_latency(pair, size, rounds, warmup, work_dir, results):
  """Exports stock and GC with the stock exporter and times serving_default."""
  import inference_latency  # pylint: disable=g-import-not-at-top
  samples = inference_latency.time_exported_pair(pair, size, rounds, warmup, work_dir)
  medians = harness.medians(samples)
  ratio = harness.paired_ratio(samples['gc'], samples['stock'])
  results.latency.append([pair, f'{size}x{size}', f'{medians["stock"] * 1e3:.0f}',
                          f'{medians["gc"] * 1e3:.0f}', str(ratio)])
  target_size, target = LATENCY_TARGET
  if size == target_size:
    results.targets.append([f'exported latency {pair} {size}x{size}: GC / stock <= '
                            f'{target}', str(ratio), harness.ratio_verdict(ratio, target)])
  print(f'{pair} {size}: exported latency GC/stock {ratio}', flush=True)


def report(results, rounds, warmup, latency_rounds, pending=0):
  """BENCHMARKS.md's "end_to_end" section (`pending` combinations still to come)."""
  table = markdown_table
  command = ' '.join(['benchmarks/end_to_end.py'] + sys.argv[1:])
  sections = [
      '## End to end: stock vs GC detectors',
      markdown_report.machine_table(),
  ]
  if pending:
    sections.append(f'- **Partial report: {pending} (model, size) measurement(s) '
                    'still to come.**')
  sections += [
      f'- Command: `{command}`',
      '- Models: the shipped pipeline configs (benchmarks/model_pairs.py) '
      'resized to a square input, random weights, float32. Stock and GC are '
      'measured in interleaved rounds in one process, so noise hits both alike.',
      '### Training step',
      table(['model', 'input', 'batch', 'stock ms', 'GC ms',
             'GC / stock per round: median [min, max]'], results.train,
            right_aligned=(2, 3, 4)),
      f'- Median of {rounds} steps per model after {warmup} warm-up steps, graph '
      'mode (the OD API\'s eager_train_step in a tf.function, as the stock '
      'trainer runs it), momentum SGD for both. GC / stock: the ratio of each '
      'round (a GC step and the stock step next to it), median and [min, max] '
      'range; a target is MET or MISSED only when the whole range is on one '
      'side of it, "within noise" otherwise.',
      '### The module\'s share: FLOPs and time',
      table(['model', 'input', 'batch', 'module fwd matmul GFLOP (profiler, batch 1)',
             'module fwd matmul GFLOP (shapes, batch 1)', 'stock step GFLOP',
             'GC step GFLOP', 'module fwd+bwd GFLOP', 'FLOP floor of GC / stock',
             'FLOP share', 'time share (alone)', 'op-time share (in the step)',
             'time / FLOP share'], results.share),
      '- Step GFLOP: the TF profiler on the traced training steps. It counts '
      'only ops whose shapes are static, so the module\'s training FLOPs come '
      'from the shapes (3x the forward matmuls: the backward needs two matmuls '
      'per forward one), cross-checked against the profiler on the module '
      'alone (first two GFLOP columns). FLOP share = module fwd+bwd / GC step; '
      'floor = (stock step + module fwd+bwd) / stock step, the GC / stock time '
      'ratio if the module ran as fast per FLOP as the rest.',
      '- Time share (alone): the module\'s forward + backward in its own '
      'tf.function at the same feature shape and batch, divided by the GC '
      'step. Op-time share: the module\'s ops as a share of all op time in a '
      'profiled GC step (benchmarks/step_profile.py); ops overlap on 2 cores, '
      'so this is a share of op time, not of wall time.',
  ]
  if results.profiles:
    sections.append('### Where the time goes (training steps that do not meet their '
                    'target)')
    for title, rows in results.profiles:
      sections += [f'{title}:', table(['part', 'stock op ms', 'GC op ms', 'GC - stock'],
                                      rows)]
    sections.append(
        '- Op time per step from the TF profiler, summed by part of the model '
        '(forward and gradient ops together; benchmarks/step_profile.py), the '
        'largest differences first. '
        'Differences outside the module come from data-dependent work (NMS, '
        'target assignment, proposal sampling) on different random weights, '
        'and from noise.')
  if results.memory:
    sections += ['### Peak resident memory of a training step',
                 table(['model', 'input', 'batch', 'stock MiB', 'GC MiB',
                        'GC / stock'], results.memory),
                 '- Each model in a fresh process running two training steps '
                 '(ru_maxrss).']
  if results.latency:
    sections += ['### Exported SavedModel latency',
                 table(['model', 'input', 'stock ms', 'GC ms',
                        'GC / stock per round: median [min, max]'], results.latency),
                 '- The OD API\'s exporter (exporter_lib_v2, image_tensor), batch 1, '
                 f'uint8 input; median of {latency_rounds} calls per model after '
                 f'{warmup} warm-up calls, models in interleaved rounds.']
  sections += ['### Targets', table(['target', 'measured', 'verdict'], results.targets),
               f'- The module\'s time share target is one-sided: MISSED only when '
               f'its time share exceeds {SHARE_TARGET}x its FLOP share (slower per '
               'FLOP than that); faster per FLOP than the rest meets it.']
  return '\n\n'.join(sections) + '\n'


def measure_main(spec):
  """Child process: training and latency of one pair at one size.

  Each (pair, size) runs in a fresh process so that the models, traced
  graphs and SavedModels of one measurement cannot pile up in memory.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.get_logger().setLevel('ERROR')
  results = Results()
  for batch in spec['batches']:
    measure_training(spec['pair'], spec['size'], batch, spec['rounds'], spec['warmup'],
                     results)
  if not spec['skip_inference']:
    measure_latency(spec['pair'], spec['size'], spec['latency_rounds'], spec['warmup'],
                    spec['work_dir'], results)
  from gc_detection import atomic_files  # pylint: disable=g-import-not-at-top
  atomic_files.write_text(spec['output'], json.dumps(results.as_dict()))


def main(argv):
  del argv
  values = flags.FLAGS
  if values.child:
    child_main(json.loads(values.child))
    return
  if values.measure:
    measure_main(json.loads(values.measure))
    return

  sizes = [256] if values.quick else [int(size) for size in values.sizes]
  batches = [1] if values.quick else [int(batch) for batch in values.batches]
  rounds = 2 if values.quick else values.rounds
  latency_rounds = max(rounds, values.latency_rounds)
  results = Results()
  work_dir = tempfile.mkdtemp(prefix='gc_end_to_end_')
  combinations = [(pair, size) for pair in values.pairs for size in sizes]
  for done, (pair, size) in enumerate(combinations, start=1):
    output = os.path.join(work_dir, f'{pair}_{size}.json')
    spec = {'pair': pair, 'size': size, 'batches': batches, 'rounds': rounds,
            'warmup': values.warmup, 'latency_rounds': latency_rounds,
            'skip_inference': values.skip_inference, 'work_dir': work_dir,
            'output': output}
    completed = subprocess.run([sys.executable, os.path.abspath(__file__),
                                f'--measure={json.dumps(spec)}'], check=False)
    if completed.returncode != 0:
      sys.exit(f'measuring {pair} at {size}x{size} failed (exit status '
               f'{completed.returncode}); the report keeps what was measured before')
    with open(output) as measured:
      results.extend(json.load(measured))
    if not values.skip_memory:
      for batch in batches:
        measure_memory(pair, size, batch, results)
    text = report(results, rounds, values.warmup, latency_rounds,
                  pending=len(combinations) - done)
    if values.markdown:
      markdown_report.replace_section(values.markdown, 'end_to_end', text)
  print('\n' + text)


if __name__ == '__main__':
  _define_flags()
  app.run(main)
