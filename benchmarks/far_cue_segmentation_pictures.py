"""Predicted masks beside the ground truth, for benchmarks/far_cue_segmentation.py.

For each of a few held-out strips, four rows: the image, the ground truth,
the stock model's prediction, the GC model's prediction (class colours below).
Each model is the registered experiment rebuilt in this process with its
latest checkpoint from the benchmark's model dir.
"""
import numpy as np

import model_garden_runs

# One colour per far_cue_strips.CLASS_NAMES entry: background, sky, table,
# street, sun, egg_yolk, street_lamp.
PALETTE = np.array([(40, 40, 40), (95, 160, 235), (140, 85, 40), (110, 110, 120),
                    (255, 140, 0), (250, 240, 120), (200, 40, 200)], np.uint8)


def predict(experiment, model_dir, images):
  """Class ids (N, H, W) of uint8 images (N, H, W, 3) by the latest checkpoint."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  model = model_garden_runs.restored_model(experiment, model_dir)
  logits = model(model_garden_runs.normalised(images), training=False)['logits']
  logits = tf.image.resize(logits, images.shape[1:3], method='bilinear')
  return tf.argmax(logits, -1).numpy()


def draw(experiments, model_dirs, strips, path):
  """Writes the PNG (atomically).

  Args:
    experiments: {'stock': name, 'gc': name} of the registered experiments.
    model_dirs: {'stock': dir, 'gc': dir} holding their checkpoints.
    strips: far_cue_strips.Strip list (the held-out ones to show).
    path: the PNG to write.
  """
  images = np.stack([strip.image for strip in strips])
  predictions = {model: predict(experiments[model], model_dirs[model], images)
                 for model in ('stock', 'gc')}
  model_garden_runs.save_strip_rows(
      [[strip.image, PALETTE[strip.labels], PALETTE[predictions['stock'][index]],
        PALETTE[predictions['gc'][index]]] for index, strip in enumerate(strips)], path)
