"""Predicted masks beside the ground truth, for benchmarks/far_cue_segmentation.py.

For each of a few held-out strips, four rows: the image, the ground truth,
the stock model's prediction, the GC model's prediction (class colours below).
Each model is the registered experiment rebuilt in this process with its
latest checkpoint from the benchmark's model dir.
"""
import io

import numpy as np

# One colour per far_cue_strips.CLASS_NAMES entry: background, sky, table,
# street, sun, egg_yolk, street_lamp.
PALETTE = np.array([(40, 40, 40), (95, 160, 235), (140, 85, 40), (110, 110, 120),
                    (255, 140, 0), (250, 240, 120), (200, 40, 200)], np.uint8)
GAP = 4


def predict(experiment, model_dir, images):
  """Class ids (N, H, W) of uint8 images (N, H, W, 3) by the latest checkpoint."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from official.core import exp_factory  # pylint: disable=g-import-not-at-top
  from official.core import task_factory  # pylint: disable=g-import-not-at-top
  from official.vision.ops import preprocess_ops  # pylint: disable=g-import-not-at-top
  from gc_detection.model_garden import registry  # pylint: disable=g-import-not-at-top,unused-import

  task = task_factory.get_task(exp_factory.get_exp_config(experiment).task)
  model = task.build_model()
  checkpoint = tf.train.latest_checkpoint(model_dir)
  tf.train.Checkpoint(model=model).read(checkpoint).expect_partial()
  inputs = tf.stack([preprocess_ops.normalize_image(tf.constant(image))
                     for image in images])
  logits = model(inputs, training=False)['logits']
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
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from gc_detection import atomic_files  # pylint: disable=g-import-not-at-top

  images = np.stack([strip.image for strip in strips])
  predictions = {model: predict(experiments[model], model_dirs[model], images)
                 for model in ('stock', 'gc')}
  height, width = images.shape[1:3]
  blocks = []
  for index, strip in enumerate(strips):
    rows = [strip.image, PALETTE[strip.labels], PALETTE[predictions['stock'][index]],
            PALETTE[predictions['gc'][index]]]
    for row in rows:
      blocks += [row, np.full((GAP // 2, width, 3), 255, np.uint8)]
    blocks.append(np.full((3 * GAP, width, 3), 255, np.uint8))
  picture = np.concatenate(blocks[:-1])
  buffer = io.BytesIO()
  Image.fromarray(picture).save(buffer, format='PNG')
  atomic_files.write_bytes(path, buffer.getvalue())
