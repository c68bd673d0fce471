r"""How far padding reaches into an image's features: stock, GC over the whole
canvas, and GC ignoring padding (measured and reported, not pass/fail).

A 16:9 image is run through a detector twice: alone (no padding), and padded
to the square canvas the paper's resize makes (`pad_to_max_dimension`: the
resized image top-left, zeros below it, then the extractor's normalisation).
For the valid cells more than --margin cells from the padding border, the
table gives the mean |change| between the two runs of

- stock: the backbone map the module refines (C4 of Faster R-CNN, C5 of
  RetinaNet), i.e. the stock model's own border effect;
- GC, whole canvas: the module's output with ignore_padding false (every cell
  attends to the padded cells too);
- GC, ignoring padding: the module's output with each image's valid cells.

next to the mean |feature| of those cells. Models: the shipped Faster R-CNN
R-50 and RetinaNet R-50 FPN GC configs at --size px, random weights (seeded),
the module's output projection random (GLOROT), so that it acts.

Usage:
  .venv/bin/python benchmarks/padding_effect.py --markdown=BENCHMARKS.md
"""
import os
import sys
import time

from absl import app
from absl import flags
import numpy as np

flags.DEFINE_integer('size', 256, 'Canvas side of the Faster R-CNN (RetinaNet: twice it).')
flags.DEFINE_integer('margin', 3, 'Compare valid cells more than this many cells from the '
                     'padding border.')
flags.DEFINE_list('seeds', ['0', '1', '2'], 'One random image and model per seed.')
flags.DEFINE_string('markdown', None, 'Rewrite the section of this file.')
FLAGS = flags.FLAGS

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {  # name: (config, canvas size as a multiple of --size)
    'Faster R-CNN R-50 (C4)': ('faster_rcnn_resnet50_v1_gc_600x1024_coco.config', 1),
    'RetinaNet R-50 FPN (C5)': ('ssd_resnet50_v1_fpn_gc_600x1024_coco.config', 2),
}
MEASURES = ('stock', 'gc_whole_canvas', 'gc_ignoring_padding', 'stock_near_border')


def _model(config_name, size, seed):
  """The GC model of a shipped config at size x size px (keep aspect, padded)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from object_detection.builders import model_builder  # pylint: disable=g-import-not-at-top
  from object_detection.utils import config_util  # pylint: disable=g-import-not-at-top
  from gc_detection.od_api import config_edits  # pylint: disable=g-import-not-at-top

  configs = config_util.get_configs_from_pipeline_file(
      os.path.join(REPO_ROOT, 'pipeline_configs', config_name),
      config_override=None)
  config_edits.set_square_input(configs['model'], size)
  tf.keras.utils.set_random_seed(seed)
  pipeline = config_util.create_pipeline_proto_from_configs(configs)
  from gc_detection.od_api import extension_settings  # pylint: disable=g-import-not-at-top
  extension = pipeline.Extensions[extension_settings.extension_descriptor()]
  extension.initialization = extension.GLOROT
  extension.ignore_padding = False
  import gc_detection.od_api  # pylint: disable=g-import-not-at-top
  with gc_detection.od_api.pipeline_scope(pipeline):
    return model_builder.build(pipeline.model, is_training=False)


def measure(config_name, size, seed, margin):
  """{'cells', 'feature', measure: mean |change|} of one model and image."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  model = _model(config_name, size, seed)
  height = size * 9 // 16
  image = np.random.default_rng(seed).uniform(0, 255, (1, height, size, 3))
  canvas = np.zeros((1, size, size, 3), np.float32)
  canvas[:, :height] = image
  padded, _ = model.preprocess(tf.constant(canvas))
  alone = padded[:, :height]
  model.predict(padded, tf.constant([[height, size, 3]]))  # builds the layers
  extractor = model.feature_extractor
  layer = extractor.global_context
  stride = extractor.global_context_stride
  valid_rows = -(-height // stride)
  compared_rows = valid_rows - margin
  maps = {}
  for name, images in (('padded', padded), ('alone', alone)):
    stock = extractor.global_context_input(images)
    valid = tf.constant([[valid_rows, stock.shape[2]]])
    maps[name] = {'stock': stock, 'gc_whole_canvas': layer(stock),
                  'gc_ignoring_padding': layer(stock, valid_shape=valid)}
  result = {'cells': compared_rows * int(maps['alone']['stock'].shape[2]),
            'feature': float(np.abs(maps['alone']['stock'][:, :compared_rows]).mean())}
  for measure_name in MEASURES[:3]:
    change = (maps['padded'][measure_name][:, :compared_rows]
              - maps['alone'][measure_name][:, :compared_rows])
    result[measure_name] = float(np.abs(change).mean())
  # What the module ignoring padding still sees change: the valid cells by
  # the border, through the stock backbone's own border effect.
  result['stock_near_border'] = float(np.abs(
      maps['padded']['stock'][:, compared_rows:valid_rows]
      - maps['alone']['stock'][:, compared_rows:valid_rows]).mean())
  return result


def report(rows, wall_seconds):
  """The Markdown section."""
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import markdown_report  # pylint: disable=g-import-not-at-top
  from gc_detection.reports.markdown import markdown_table  # pylint: disable=g-import-not-at-top
  table = markdown_table(
      ['model', 'canvas', 'cells compared', 'mean abs feature', 'stock: mean abs change',
       'GC, whole canvas', 'GC, ignoring padding', 'stock, by the border'],
      [[name, f'{canvas}x{canvas}', cells, f'{feature:.2f}'] + [
          f'{value:.3g} [{low:.3g}, {high:.3g}]' for value, low, high in changes]
       for name, canvas, cells, feature, changes in rows])
  return '\n\n'.join([
      '## Padding: how far it reaches into an image\'s features',
      markdown_report.machine_table(),
      f'- Command: `benchmarks/padding_effect.py {" ".join(sys.argv[1:])}`; wall time '
      f'{wall_seconds / 60:.1f} min.',
      '- A random 16:9 image, alone and padded to the square canvas of the paper\'s '
      'resize (pad_to_max_dimension). Mean |change| between the two runs over the '
      f'valid cells more than {FLAGS.margin} cells from the padding border, median '
      f'[min, max] over {len(FLAGS.seeds)} seeds (image and random weights); the '
      'module\'s output projection is random (GLOROT). Stock: the backbone map the '
      'module refines (the stock model\'s own border effect). GC, whole canvas: '
      'ignore_padding false. GC, ignoring padding: ignore_padding true. Its change '
      'is what the stock map\'s change passes through the attention: the valid '
      'cells by the border (last column: their stock change) are keys of every '
      'query, so the stock border effect still travels; the padded cells no longer do.',
      table,
  ]) + '\n'


def main(argv):
  del argv
  started = time.perf_counter()
  rows = []
  for name, (config_name, multiple) in MODELS.items():
    size = FLAGS.size * multiple
    results = [measure(config_name, size, int(seed), FLAGS.margin) for seed in FLAGS.seeds]
    changes = [(float(np.median([r[m] for r in results])), min(r[m] for r in results),
                max(r[m] for r in results)) for m in MEASURES]
    rows.append((name, size, results[0]['cells'],
                 float(np.median([r['feature'] for r in results])), changes))
    print(name, changes, file=sys.stderr, flush=True)
  text = report(rows, time.perf_counter() - started)
  if FLAGS.markdown:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import markdown_report  # pylint: disable=g-import-not-at-top
    markdown_report.replace_section(FLAGS.markdown, 'padding_effect', text)
  print(text)


if __name__ == '__main__':
  app.run(main)
