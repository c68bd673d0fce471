"""Panoptic predictions beside the ground truth, for benchmarks/far_cue_panoptic.py.

For each of a few held-out strips, four rows: the image, the ground truth,
the stock model's panoptic prediction, the GC model's: one colour per
category (below), instances outlined in white, void black. Each model is the
registered experiment rebuilt in this process with its latest checkpoint.
"""
import numpy as np

import model_garden_runs

# One colour per far_cue_panoptic.CATEGORY_NAMES entry: void, sun, egg_yolk,
# street_lamp, background, sky, table, street, cloud_bank, tablecloth, pavement.
PALETTE = np.array([(0, 0, 0), (255, 140, 0), (250, 240, 120), (200, 40, 200),
                    (60, 60, 60), (95, 160, 235), (140, 85, 40), (110, 110, 120),
                    (225, 235, 250), (230, 120, 140), (170, 170, 150)], np.uint8)


def predict(experiment, model_dir, images):
  """(category, instance) int (N, H, W) of uint8 images (N, H, W, 3)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  model = model_garden_runs.restored_model(experiment, model_dir)
  sizes = tf.constant([images.shape[1:3]] * len(images), tf.float32)
  outputs = model(model_garden_runs.normalised(images), image_shape=sizes, training=False)
  return outputs['category_mask'].numpy(), outputs['instance_mask'].numpy()


def coloured(category, instance):
  """uint8 (H, W, 3): category colours, white where an instance meets another segment."""
  picture = PALETTE[category].copy()
  edge = np.zeros(category.shape, bool)
  edge[:-1] |= instance[:-1] != instance[1:]
  edge[:, :-1] |= instance[:, :-1] != instance[:, 1:]
  picture[edge & (instance > 0)] = 255
  return picture


def draw(experiments, model_dirs, strips, path):
  """Writes the PNG (atomically).

  Args:
    experiments: {'stock': name, 'gc': name} of the registered experiments.
    model_dirs: {'stock': dir, 'gc': dir} holding their checkpoints.
    strips: far_cue_panoptic.PanopticStrip list (the held-out ones to show).
    path: the PNG to write.
  """
  images = np.stack([strip.image for strip in strips])
  predictions = {model: predict(experiments[model], model_dirs[model], images)
                 for model in ('stock', 'gc')}
  model_garden_runs.save_strip_rows(
      [[strip.image, coloured(strip.category_mask, strip.instance_mask)]
       + [coloured(predictions[model][0][index], predictions[model][1][index])
          for model in ('stock', 'gc')] for index, strip in enumerate(strips)], path)
