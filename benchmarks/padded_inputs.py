r"""What ignoring padding saves at the paper's resize: stock vs GC, side by side.

The paper's resize (keep_aspect_ratio_resizer 600-1024, pad_to_max_dimension)
puts every photo into a 1024 x 1024 canvas. On a mix of photo shapes (4:3,
3:4, 16:9, 1:1; 640 px wide or tall), three variants of each model pair are
measured in interleaved rounds (benchmarks/harness.py):

- stock;
- GC, whole canvas: the GC model with ignore_padding false (every cell of
  the canvas attends to every cell);
- GC, ignoring padding: the same with ignore_padding true (the default).

For each: the OD API's training step (benchmarks/train_step.py's step, on
images the model's own preprocess resized and padded), at batch 1 (each of
the four photos once per round) and batch 2 (4:3 with 3:4, 16:9 with 1:1);
the latency of the stock exporter's SavedModel on the four photos (batch 1);
and the module's forward matmul FLOPs per image (harness.module_flops) over
the canvas and over the cells the module attends to. A round's time is the
sum over the mix; ratios are per-round GC / stock, median [min, max].

Targets (Faster R-CNN R-50, batch 1, GC ignoring padding / stock): training
step <= 1.05, exported latency <= 1.03.

Usage (about 45 minutes on an idle 2-core machine; run nothing else):
  .venv/bin/python benchmarks/padded_inputs.py --markdown=BENCHMARKS.md
  --quick: Faster R-CNN only, a 150-256 resize, 1 round: checks the code path.
"""
import os
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

# benchmarks/ is on sys.path when run as a script.
import harness
import inference_latency
import markdown_report
import train_step
from gc_detection.reports.markdown import markdown_table


def _define_flags():
  """Defines the command-line flags (only when run as a program, so that
  importing this module next to other benchmarks cannot clash in absl's
  global flag registry)."""
  flags.DEFINE_list('pairs', ['faster_rcnn_r50', 'retinanet_r50'], 'Model pairs.')
  flags.DEFINE_list('batches', ['1', '2'], 'Training batch sizes.')
  flags.DEFINE_integer('rounds', 5, 'Timed rounds.')
  flags.DEFINE_integer('warmup', 1, 'Untimed rounds (tracing).')
  flags.DEFINE_bool('quick', False, 'Faster R-CNN, a 150-256 resize, batch 1, 1 round.')
  flags.DEFINE_bool('skip_inference', False, 'Do not export and time SavedModels.')
  flags.DEFINE_string('markdown', None, 'Rewrite the "padded_inputs" section of this file.')
  flags.DEFINE_string('measure', None, 'Internal: "pair,train|latency,batch" measured in a '
                      'child process (each measurement gets a fresh process and its memory).')


FLAGS = flags.FLAGS

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAIRS = {  # the paper's 600-1024 resize, padded to 1024 x 1024
    'faster_rcnn_r50': ('Faster R-CNN R-50', 'faster_rcnn_resnet50_v1_600x1024_coco.config',
                        'faster_rcnn_resnet50_v1_gc_600x1024_coco.config', 16, 1024),
    'retinanet_r50': ('RetinaNet R-50 FPN', 'ssd_resnet50_v1_fpn_600x1024_coco.config',
                      'ssd_resnet50_v1_fpn_gc_600x1024_coco.config', 32, 2048),
}
VARIANTS = ('stock', 'gc_whole_canvas', 'gc_ignoring_padding')
LABELS = {'stock': 'stock', 'gc_whole_canvas': 'GC, whole canvas',
          'gc_ignoring_padding': 'GC, ignoring padding'}
PHOTOS = {'4:3': (480, 640), '3:4': (640, 480), '16:9': (360, 640), '1:1': (640, 640)}
BATCH_MIX = {1: [['4:3'], ['3:4'], ['16:9'], ['1:1']], 2: [['4:3', '3:4'], ['16:9', '1:1']]}
TARGETS = {'train': 1.05, 'latency': 1.03}


def _log(message):
  print(f'[padded_inputs {time.strftime("%H:%M:%S")}] {message}', file=sys.stderr,
        flush=True)


def pipeline_of(pair, variant, resize):
  """The variant's TrainEvalPipelineConfig; resize (min, max) px."""
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  from object_detection.protos import pipeline_pb2  # pylint: disable=g-import-not-at-top
  from gc_detection.od_api import extension_settings  # pylint: disable=g-import-not-at-top

  _, stock_config, gc_config, _, _ = PAIRS[pair]
  pipeline = pipeline_pb2.TrainEvalPipelineConfig()
  config = stock_config if variant == 'stock' else gc_config
  with open(os.path.join(REPO_ROOT, 'pipeline_configs', config)) as config_file:
    text_format.Merge(config_file.read(), pipeline)
  model = getattr(pipeline.model, pipeline.model.WhichOneof('model'))
  resizer = model.image_resizer.keep_aspect_ratio_resizer
  resizer.min_dimension, resizer.max_dimension = resize
  assert resizer.pad_to_max_dimension
  if variant != 'stock':
    pipeline.Extensions[extension_settings.extension_descriptor()].ignore_padding = (
        variant == 'gc_ignoring_padding')
  return pipeline


def _photos(names, scale):
  """uint8 (1, h, w, 3) photos of the named shapes (seeded noise)."""
  rng = np.random.default_rng(0)
  return [rng.integers(0, 256, (1, round(PHOTOS[name][0] * scale),
                                round(PHOTOS[name][1] * scale), 3)).astype(np.uint8)
          for name in names]


def train_calls(pair, batch, resize, scale):
  """{variant: a call training one step on each batch of the mix}."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from object_detection.builders import model_builder  # pylint: disable=g-import-not-at-top
  from gc_detection import od_api  # pylint: disable=g-import-not-at-top

  calls = {}
  for variant in VARIANTS:
    pipeline = pipeline_of(pair, variant, resize)
    od_api.bind(pipeline)
    model = model_builder.build(pipeline.model, is_training=True)
    steps = []
    for names in BATCH_MIX[batch]:
      preprocessed, shapes = zip(*[model.preprocess(tf.constant(photo, tf.float32))
                                   for photo in _photos(names, scale)])
      steps.append(train_step.train_step_on(model, tf.concat(preprocessed, 0),
                                            tf.concat(shapes, 0)))

    def call(steps=steps, variant=variant):
      for step in steps:
        loss = step()
        assert np.isfinite(loss), f'{pair} {variant}: loss {loss}'
    calls[variant] = call
  return calls


def latency_calls(pair, resize, scale, work_dir):
  """{variant: a call serving each photo once with its exported SavedModel}."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  photos = [tf.constant(photo) for photo in _photos(list(PHOTOS), scale)]
  calls = {}
  for variant in VARIANTS:
    saved_model = inference_latency.export_pipeline(
        pipeline_of(pair, variant, resize), os.path.join(work_dir, f'{pair}_{variant}'),
        resize[0])
    signature = tf.saved_model.load(saved_model).signatures['serving_default']

    def call(signature=signature):
      for photo in photos:
        signature(input_tensor=photo)
    calls[variant] = call
  return calls


def _resized(photo_shape, resize):
  """(h, w) of the keep_aspect_ratio_resizer's output inside the canvas."""
  height, width = photo_shape
  low, high = resize
  scale = low / min(height, width)
  if max(height, width) * scale > high:
    scale = high / max(height, width)
  return round(height * scale), round(width * scale)


def module_flops_per_image(pair, batch, resize, scale):
  """(forward FLOPs per image over the canvas, over the attended cells)."""
  _, _, _, stride, channels = PAIRS[pair]
  canvas_cells = -(-resize[1] // stride)
  whole = harness.module_flops(canvas_cells ** 2, channels).total
  attended = []
  for names in BATCH_MIX[batch]:
    cells = [[-(-side // stride) for side in
              _resized((round(PHOTOS[n][0] * scale), round(PHOTOS[n][1] * scale)), resize)]
             for n in names]
    extent = max(c[0] for c in cells) * max(c[1] for c in cells)  # the batch's crop
    attended += [harness.module_flops(extent, channels).total] * len(names)
  return whole, float(np.mean(attended))


def _settings():
  """(pairs, batches, rounds, resize (min, max), photo scale) of the flags."""
  if FLAGS.quick:
    return ['faster_rcnn_r50'], [1], 1, (150, 256), 0.25
  return FLAGS.pairs, [int(b) for b in FLAGS.batches], FLAGS.rounds, (600, 1024), 1.0


def measure(pair, kind, batch):
  """In a child: times the three variants; prints {'times': {variant: [s]}}."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.get_logger().setLevel('ERROR')
  _, _, rounds, resize, scale = _settings()
  if kind == 'train':
    calls = train_calls(pair, batch, resize, scale)
  else:
    calls = latency_calls(pair, resize, scale, tempfile.mkdtemp(prefix='gc_padded_'))
  harness.time_alternately(calls, rounds=0, warmup=FLAGS.warmup)
  harness.child_result(times=harness.time_alternately(calls, rounds))


def _measured(pair, kind, batch):
  argv = [os.path.abspath(__file__), f'--measure={pair},{kind},{batch}'] + [
      arg for arg in sys.argv[1:] if not arg.startswith(('--markdown', '--measure'))]
  result = harness.measure_in_child(argv)
  if 'error' in result:
    raise RuntimeError(f'{pair} {kind} batch {batch}: {result["error"]}')
  return result['times']


def main(argv):
  del argv
  if FLAGS.measure:
    pair, kind, batch = FLAGS.measure.split(',')
    measure(pair, kind, int(batch))
    return
  started = time.perf_counter()
  pairs, batches, rounds, resize, scale = _settings()
  measurements = [(pair, 'train', batch) for pair in pairs for batch in batches]
  if not FLAGS.skip_inference:
    measurements += [(pair, 'latency', 1) for pair in pairs]
  rows, verdicts = [], []
  for pair, kind, batch in measurements:
    name = PAIRS[pair][0]
    _log(f'{name}, {kind}, batch {batch}')
    times = _measured(pair, kind, batch)
    medians = harness.medians(times)
    whole, attended = module_flops_per_image(pair, batch, resize, scale)
    measure_name = 'train step' if kind == 'train' else 'exported latency'
    for variant in VARIANTS[1:]:
      ratio = harness.paired_ratio(times[variant], times['stock'])
      flops = whole if variant == 'gc_whole_canvas' else attended
      rows.append([name, measure_name, batch, LABELS[variant], f'{medians["stock"]:.2f}',
                   f'{medians[variant]:.2f}', str(ratio), f'{flops / 1e9:.1f}'])
      if pair == 'faster_rcnn_r50' and batch == 1 and variant == 'gc_ignoring_padding':
        verdicts.append((measure_name, ratio,
                         TARGETS['train' if kind == 'train' else 'latency']))
  text = report(rows, verdicts, resize, rounds, time.perf_counter() - started)
  if FLAGS.markdown:
    markdown_report.replace_section(FLAGS.markdown, 'padded_inputs', text)
  print(text)


def report(rows, verdicts, resize, rounds, wall_seconds):
  """The Markdown section."""
  lines = [
      '## Ignoring padding at the paper\'s resize: stock vs GC',
      markdown_report.machine_table(),
      f'- Command: `benchmarks/padded_inputs.py {" ".join(sys.argv[1:])}`; wall time '
      f'{wall_seconds / 60:.1f} min.',
      f'- Inputs: photos of {", ".join(f"{k} ({h}x{w})" for k, (h, w) in PHOTOS.items())}'
      f', resized by keep_aspect_ratio_resizer {resize[0]}-{resize[1]} and padded to '
      f'{resize[1]}x{resize[1]} (pad_to_max_dimension), random weights. A round is one '
      'step per batch of the mix (batch 1: each photo; batch 2: 4:3 with 3:4, 16:9 '
      'with 1:1) or one SavedModel call per photo; seconds are per round, medians of '
      f'{rounds} interleaved rounds; ratio: per-round GC / stock, median [min, max].',
      '- Module FLOPs: forward matmuls per image (harness.module_flops) over the cells '
      'the module attends to: the whole canvas, or the batch\'s valid extent.',
      markdown_table(['model', 'measure', 'batch', 'GC variant', 'stock s', 'GC s',
                      'GC / stock', 'module GFLOPs per image'], rows),
  ]
  for measure, ratio, target in verdicts:
    lines.append(f'- Faster R-CNN R-50, batch 1, {measure}, GC ignoring padding / stock '
                 f'<= {target:g}: {ratio} ({harness.ratio_verdict(ratio, target)}).')
  return '\n\n'.join(lines) + '\n'


if __name__ == '__main__':
  _define_flags()
  app.run(main)
