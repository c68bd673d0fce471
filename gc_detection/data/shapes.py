"""A tiny generated detection dataset: coloured rectangles on noise.

Used by the one-step smoke run and the tests, where only the input pipeline
and the training step are under test, not what the model learns.
"""
import numpy as np

from gc_detection.data import tf_example

# Class name -> RGB fill. Label-map ids follow this order, starting at 1.
SHAPE_COLOURS = {'red_box': (220, 40, 40), 'blue_box': (40, 60, 220)}


def generate(seed, count, height=240, width=320, max_boxes=3):
  """Returns `count` DetectionExamples, deterministic in `seed`.

  Each image is uint8 (height, width, 3): uniform noise with 1..max_boxes
  filled rectangles, each at least 16 pixels on a side.
  """
  rng = np.random.default_rng(seed)
  names = list(SHAPE_COLOURS)
  examples = []
  for index in range(count):
    image = rng.integers(0, 96, size=(height, width, 3), dtype=np.uint8)
    boxes, class_ids = [], []
    for _ in range(rng.integers(1, max_boxes + 1)):
      box_h = rng.integers(16, height // 2)
      box_w = rng.integers(16, width // 2)
      top = rng.integers(0, height - box_h)
      left = rng.integers(0, width - box_w)
      class_index = rng.integers(len(names))
      image[top:top + box_h, left:left + box_w] = SHAPE_COLOURS[names[class_index]]
      boxes.append((top, left, top + box_h, left + box_w))
      class_ids.append(class_index + 1)
    examples.append(tf_example.DetectionExample(
        image=image,
        boxes=np.array(boxes, dtype=np.float64),
        class_ids=np.array(class_ids),
        class_names=[names[i - 1] for i in class_ids],
        filename=f'shapes_{seed}_{index:05d}.png'))
  return examples
