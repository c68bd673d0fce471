r"""What global context costs end to end: stock vs GC detectors, side by side.

For each model pair (Faster R-CNN R-50, RetinaNet R-50 FPN), input size and
batch size it measures, stock and GC alternately in one run:

- training step time: the OD API's own `eager_train_step` in a tf.function, as
  the stock trainer runs it (benchmarks/train_step.py builds it), median of
  several steps after warm-up;
- the GC module's share of that step: its forward + backward on the same
  feature-map shape, timed alone, as a share of the GC model's step;
- the module's share of the training step's FLOPs: the TF profiler on the
  traced stock and GC steps (the difference is the module's forward and
  backward), with the module's forward count cross-checked against the count
  from the shapes; the FLOP ratio is the floor the time ratio can reach;
- peak resident memory of a training step, each model in a fresh process;
- latency of the stock-exported SavedModel (benchmarks/inference_latency.py).

Usage:
  .venv/bin/python benchmarks/end_to_end.py [--pairs=faster_rcnn_r50,retinanet_r50] \
      [--sizes=640,1024] [--batches=1,2] [--rounds=5] [--markdown=PATH]
  --quick: one size (256), batch 1, 2 rounds: checks that everything runs.
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile

from absl import app
from absl import flags
import numpy as np

from model_pairs import PAIRS  # benchmarks/ is on sys.path when run as a script

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
  flags.DEFINE_string('markdown', None, 'Also write the report as Markdown here.')
  flags.DEFINE_string('child', None, 'Internal: JSON spec of a memory child.')


# --- FLOPs ----------------------------------------------------------------------


def module_flops_from_shapes(tokens, channels, num_heads=4, num_layers=1, ratio=4):
  """Forward matmul FLOPs of GlobalContextAttention on `tokens` positions.

  QKV 2*L*C*3D + scores 2*L*L*D + context 2*L*L*D + output 2*L*D*C per layer
  (D = C / ratio; summed over heads); softmax, biases and residual not counted.
  """
  del num_heads  # the head split does not change the count
  key_channels = channels // ratio
  per_layer = (2 * tokens * channels * 3 * key_channels + 4 * tokens * tokens *
               key_channels + 2 * tokens * key_channels * channels)
  return num_layers * per_layer


def graph_flops(graph):
  """Float operations the TF profiler counts in a graph."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options['output'] = 'none'
  return tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops


def profiled_flops(function, *specs):
  """Float operations in the graph of a Python function traced for specs."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return graph_flops(tf.function(function).get_concrete_function(*specs).graph)


def training_step_flops(run):
  """Float operations of a traced training step (build_train_step's result)."""
  run()  # traces the step and creates the variables
  return graph_flops(run.tf_function.get_concrete_function().graph)


def module_flops(gc_config, size):
  """(module forward FLOPs by the profiler, the same from the shapes)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from train_step import load_model_config  # pylint: disable=g-import-not-at-top
  from gc_detection.models import global_context_settings as settings_lib  # pylint: disable=g-import-not-at-top

  model_config = load_model_config(gc_config, size)
  stride, channels = MODULE_INPUT[model_config.WhichOneof('model')]
  settings = settings_lib.GlobalContextSettings()
  layer = settings_lib.make_global_context_layer(settings, channels)
  side = -(-size // stride)
  feature_spec = tf.TensorSpec([1, side, side, channels], tf.float32)
  profiled = profiled_flops(lambda features: layer(features), feature_spec)
  return profiled, module_flops_from_shapes(side * side, channels, settings.num_heads,
                                            settings.num_layers,
                                            settings.bottleneck_ratio)


# --- Time -------------------------------------------------------------------------


def module_step(gc_config, size, batch):
  """A zero-argument function: the module's forward + backward, as in training."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from train_step import load_model_config  # pylint: disable=g-import-not-at-top
  from gc_detection.models import global_context_settings as settings_lib  # pylint: disable=g-import-not-at-top
  from gc_detection import registry  # pylint: disable=g-import-not-at-top

  model_config = load_model_config(gc_config, size)
  stride, channels = MODULE_INPUT[model_config.WhichOneof('model')]
  del registry
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


def median_times(functions, rounds, warmup):
  """{name: median seconds per call}, the functions called in turn."""
  from inference_latency import time_alternately  # pylint: disable=g-import-not-at-top
  samples = time_alternately(functions, rounds, warmup)
  return {name: statistics.median(values) for name, values in samples.items()}


# --- Memory -----------------------------------------------------------------------


def child_main(spec):
  """Runs training steps of one model; prints its peak RSS (KiB) as JSON."""
  from train_step import build_train_step  # pylint: disable=g-import-not-at-top
  step = build_train_step(spec['config'], spec['size'], spec['batch'])
  for _ in range(2):
    step()
  print(json.dumps({'peak_kib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def peak_memory_kib(config, size, batch):
  """Peak RSS of a fresh process running two training steps; None on failure."""
  spec = json.dumps({'config': config, 'size': size, 'batch': batch})
  completed = subprocess.run([sys.executable, os.path.abspath(__file__),
                              f'--child={spec}'], capture_output=True, text=True,
                             check=False)
  if completed.returncode != 0:
    return None
  return json.loads(completed.stdout.strip().splitlines()[-1])['peak_kib']


# --- Report -----------------------------------------------------------------------


def markdown_table(headers, rows):
  lines = ['| ' + ' | '.join(headers) + ' |', '|' + '---|' * len(headers)]
  lines += ['| ' + ' | '.join(str(cell) for cell in row) + ' |' for row in rows]
  return '\n'.join(lines)


def main(argv):
  del argv
  values = flags.FLAGS
  if values.child:
    child_main(json.loads(values.child))
    return
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.get_logger().setLevel('ERROR')
  from train_step import build_train_step  # pylint: disable=g-import-not-at-top
  import inference_latency  # pylint: disable=g-import-not-at-top

  sizes = [256] if values.quick else [int(size) for size in values.sizes]
  batches = [1] if values.quick else [int(batch) for batch in values.batches]
  rounds = 2 if values.quick else values.rounds
  train_rows, share_rows, memory_rows, latency_rows = [], [], [], []
  work_dir = tempfile.mkdtemp(prefix='gc_end_to_end_')
  for pair in values.pairs:
    stock_config, gc_config = PAIRS[pair]
    for size in sizes:
      module, from_shapes = module_flops(gc_config, size)
      for batch in batches:
        steps = {'stock': build_train_step(stock_config, size, batch),
                 'gc': build_train_step(gc_config, size, batch),
                 'module': module_step(gc_config, size, batch)}
        stock_flops = training_step_flops(steps['stock'])
        gc_flops = training_step_flops(steps['gc'])
        medians = median_times(steps, rounds, values.warmup)
        ratio = medians['gc'] / medians['stock']
        train_rows.append([pair, f'{size}x{size}', batch,
                           f'{medians["stock"] * 1e3:.0f}', f'{medians["gc"] * 1e3:.0f}',
                           f'{ratio:.3f}'])
        time_share = medians['module'] / medians['gc']
        # Training: forward + backward = 3x the forward matmuls (the backward
        # needs two matmuls per forward one).
        module_train = 3 * from_shapes * batch
        flop_share = module_train / gc_flops
        share_rows.append([pair, f'{size}x{size}', batch, f'{module / 1e9:.2f}',
                           f'{from_shapes / 1e9:.2f}', f'{stock_flops / 1e9:.1f}',
                           f'{gc_flops / 1e9:.1f}',
                           f'{(gc_flops - stock_flops) / 1e9:.1f}',
                           f'{module_train / 1e9:.1f}',
                           f'{(stock_flops + module_train) / stock_flops:.3f}',
                           f'{flop_share:.1%}', f'{time_share:.1%}',
                           f'{time_share / flop_share:.2f}'])
        print(f'{pair} {size} batch {batch}: step GC/stock {ratio:.3f}, module '
              f'time share {time_share:.1%} vs FLOP share {flop_share:.1%}',
              flush=True)
        if not values.skip_memory:
          stock_kib = peak_memory_kib(stock_config, size, batch)
          gc_kib = peak_memory_kib(gc_config, size, batch)
          memory_rows.append([pair, f'{size}x{size}', batch,
                              f'{stock_kib / 1024:.0f}' if stock_kib else 'failed',
                              f'{gc_kib / 1024:.0f}' if gc_kib else 'failed',
                              f'{gc_kib / stock_kib:.3f}' if stock_kib and gc_kib else '-'])
      if not values.skip_inference:
        detect = {}
        image = tf.constant(np.random.default_rng(0).integers(
            0, 256, (1, size, size, 3)), tf.uint8)
        for label, config in (('stock', stock_config), ('gc', gc_config)):
          saved_model = inference_latency.export(
              config, size, os.path.join(work_dir, f'{pair}_{size}_{label}'))
          signature = tf.saved_model.load(saved_model).signatures['serving_default']
          detect[label] = lambda s=signature: s(input_tensor=image)
        medians = median_times(detect, max(rounds, 5), values.warmup)
        latency_rows.append([pair, f'{size}x{size}', f'{medians["stock"] * 1e3:.0f}',
                             f'{medians["gc"] * 1e3:.0f}',
                             f'{medians["gc"] / medians["stock"]:.3f}'])

  sections = [
      '## Training step (stock vs GC)',
      markdown_table(['model', 'input', 'batch', 'stock ms', 'GC ms', 'GC / stock'],
                     train_rows),
      f'Median of {rounds} steps per model after {values.warmup} warm-up steps, '
      'models alternating, graph mode (tf.function around the OD API\'s '
      'eager_train_step), float32, momentum SGD for both.',
      '## The module\'s share: FLOPs and time',
      markdown_table(['model', 'input', 'batch', 'module fwd GFLOP (profiler, batch 1)',
                      'module fwd GFLOP (shapes, batch 1)', 'stock step GFLOP',
                      'GC step GFLOP', 'GC - stock (profiler)',
                      'module fwd+bwd GFLOP (shapes)', 'FLOP floor of GC / stock',
                      'FLOP share', 'time share', 'time / FLOP share'], share_rows),
      'Step GFLOP: the TF profiler on the traced training steps; it counts '
      'only ops whose shapes are static, so "GC - stock" can exceed the '
      'module (the module restores static shapes the stock graph lacks). '
      'The module\'s training FLOPs are therefore taken from the shapes '
      '(3x the forward matmuls, cross-checked with the profiler on the module '
      'alone); FLOP share = those / GC step GFLOP; the floor is (stock + '
      'module) / stock. Time share: the module\'s forward + backward alone at '
      'the same feature shape and batch, divided by the GC model\'s step time.',
  ]
  if memory_rows:
    sections += ['## Peak resident memory of a training step',
                 markdown_table(['model', 'input', 'batch', 'stock MiB', 'GC MiB',
                                 'GC / stock'], memory_rows),
                 'Each model in a fresh process running two steps; ru_maxrss.']
  if latency_rows:
    sections += ['## Exported SavedModel latency',
                 markdown_table(['model', 'input', 'stock ms', 'GC ms', 'GC / stock'],
                                latency_rows),
                 'Stock exporter (image_tensor), batch 1, uint8 input, medians, '
                 'models alternating.']
  report = '\n\n'.join(sections) + '\n'
  print('\n' + report)
  if values.markdown:
    from gc_detection import atomic_files  # pylint: disable=g-import-not-at-top
    atomic_files.write_text(values.markdown, report)


if __name__ == '__main__':
  _define_flags()
  app.run(main)
