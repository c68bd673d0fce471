r"""Where a trained GC model's attention goes on the far-cue dataset.

For every ground-truth object of the first held-out images, the query is the
C4 cell under the object's centre; its attention weights (mean over heads,
summing to 1 over the 16 x 16 cells) are split into

- the cells of the cue's strip (the `cue_depth` px along the cue's edge),
- the cells whose C4 receptive field reaches that strip,
- the query's own cell,

each next to the share of cells it is (what uniform attention would give).
Prints one JSON object; benchmarks/far_cue.py calls it for every GC run.

  .venv/bin/python benchmarks/far_cue_attention.py --pipeline_config_path=... \
      --checkpoint=MODEL_DIR --data_dir=DATA_DIR [--num_images=40]
"""
import json
import os
import sys

from absl import app
from absl import flags
import numpy as np


def _define_flags():
  flags.DEFINE_string('pipeline_config_path', None, 'GC model config.', required=True)
  flags.DEFINE_string('checkpoint', None, 'Checkpoint or model_dir.', required=True)
  flags.DEFINE_string('data_dir', None, 'far_cue_dataset output.', required=True)
  flags.DEFINE_integer('num_images', 40, 'Held-out images to look at.')


def attention_shares(pipeline_config_path, checkpoint, data_dir, num_images):
  """{'objects', 'on_cue_strip', 'cue_strip_cells', 'reaching_cue', 'reaching_cells', 'own_cell', 'own_cells'}."""
  from gc_detection.data import far_cue_scenes  # pylint: disable=g-import-not-at-top
  from gc_detection.data import image_files  # pylint: disable=g-import-not-at-top
  from gc_detection.od_api import attention_model  # pylint: disable=g-import-not-at-top
  from gc_detection.od_api import attention_weights  # pylint: disable=g-import-not-at-top

  loaded = attention_model.load_model(pipeline_config_path, checkpoint)
  with open(os.path.join(data_dir, 'val_coco.json')) as truth_file:
    truth = json.load(truth_file)
  with open(os.path.join(data_dir, 'dataset.json')) as summary_file:
    size = json.load(summary_file)['size']
  depth = far_cue_scenes.SceneSpec(size=size).cue_depth()
  stride = loaded.stride
  cells = size // stride
  centres = np.arange(cells) * stride + stride / 2
  rows, cols = np.meshgrid(centres, centres, indexing='ij')
  objects = {}
  for annotation in truth['annotations']:
    objects.setdefault(annotation['image_id'], []).append(annotation)
  shares = {'on_cue_strip': [], 'cue_strip_cells': [], 'reaching_cue': [],
            'reaching_cells': [], 'own_cell': []}
  for entry in truth['images'][:num_images]:
    image = image_files.load_image(os.path.join(data_dir, 'val_images',
                                                entry['file_name']))
    features = attention_weights.module_input(
        loaded, attention_weights.preprocess(loaded, image)[0])
    weights = attention_weights.attention_matrix(loaded.layer, features).mean(axis=0)
    across = {'top': rows, 'bottom': size - rows, 'left': cols,
              'right': size - cols}[entry['cue_edge']]  # cell centre to the cue's edge
    strip = (across - stride / 2 < depth).ravel()
    reaching = (across - depth <= far_cue_scenes.C4_RECEPTIVE_FIELD // 2).ravel()
    for annotation in objects.get(entry['id'], []):
      x, y, width, height = annotation['bbox']
      query = int((y + height / 2) // stride) * cells + int((x + width / 2) // stride)
      row = weights[query]
      shares['on_cue_strip'].append(row[strip].sum())
      shares['cue_strip_cells'].append(strip.mean())
      shares['reaching_cue'].append(row[reaching].sum())
      shares['reaching_cells'].append(reaching.mean())
      shares['own_cell'].append(row[query])
  result = {name: float(np.mean(values)) for name, values in shares.items()}
  result['own_cells'] = 1 / cells ** 2
  result['objects'] = len(shares['own_cell'])
  result['images'] = min(num_images, len(truth['images']))
  return result


def main(argv):
  del argv
  values = flags.FLAGS
  print(json.dumps(attention_shares(values.pipeline_config_path, values.checkpoint,
                                    values.data_dir, values.num_images)))


if __name__ == '__main__':
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  _define_flags()
  app.run(main)
