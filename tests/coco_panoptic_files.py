"""A tiny dataset in COCO's panoptic format, for the conversion tests.

JPEGs, panoptic PNGs whose segment ids use all three channels, things, crowd
things, stuff with non-contiguous ids, void and unlisted pixels, categories
not sorted by id.
"""
import json

import numpy as np
from PIL import Image

CATEGORIES = [  # things and stuff mixed, not in id order
    {'id': 12, 'name': 'grass', 'isthing': 0, 'supercategory': 'plant'},
    {'id': 3, 'name': 'car', 'isthing': 1, 'supercategory': 'vehicle'},
    {'id': 7, 'name': 'sky', 'isthing': 0, 'supercategory': 'sky'},
    {'id': 1, 'name': 'person', 'isthing': 1, 'supercategory': 'person'},
    {'id': 9, 'name': 'wall', 'isthing': 0, 'supercategory': 'wall'},
]
# (height, width) and the (category_id, iscrowd) of the segments, painted in order.
IMAGES = [
    ((40, 56), [(7, 0), (12, 0), (1, 0), (3, 1)]),
    ((56, 40), [(9, 0), (7, 0), (3, 0), (1, 1), (1, 0)]),
    ((40, 56), [(12, 0), (9, 0), (3, 0)]),
]


def paint_segments(rng, shape, segment_categories):
  """(int (H, W) segment ids, segments_info): random boxes, void and unlisted ids."""
  height, width = shape
  ids = np.zeros(shape, np.int64)
  segments = []
  for category_id, iscrowd in segment_categories:
    segment_id = int(rng.integers(1, 256 ** 3))  # uses R, G and B
    top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
    bottom = top + rng.integers(height // 4, height - top + 1)
    right = left + rng.integers(width // 4, width - left + 1)
    ids[top:bottom, left:right] = segment_id
    segments.append({'id': segment_id, 'category_id': category_id, 'iscrowd': iscrowd,
                     'bbox': [int(left), int(top), int(right - left), int(bottom - top)],
                     'area': int((bottom - top) * (right - left))})
  ids[:3, :5] = 123457  # an id no segment lists
  ids[-4:, -6:] = 0  # void
  return ids, segments


def panoptic_rgb(ids):
  """The uint8 (H, W, 3) panoptic PNG pixels of int (H, W) segment ids."""
  return np.stack([ids % 256, ids // 256 % 256, ids // 256 ** 2], axis=-1).astype(np.uint8)


def write_dataset(root, images=IMAGES, seed=0):
  """Writes root/{val2017, panoptic_val2017, panoptic_val2017.json}.

  Returns (paths dict, [(image info, int (H, W) segment ids, segments_info)]).
  """
  rng = np.random.default_rng(seed)
  paths = {'images': root / 'val2017', 'masks': root / 'panoptic_val2017',
           'json': root / 'panoptic_val2017.json'}
  paths['images'].mkdir(parents=True)
  paths['masks'].mkdir()
  panoptic = {'images': [], 'annotations': [], 'categories': CATEGORIES}
  generated = []
  for image_id, (shape, segment_categories) in zip((139, 42, 785), images):
    info = {'id': image_id, 'file_name': f'{image_id:012d}.jpg',
            'height': shape[0], 'width': shape[1]}
    pixels = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    Image.fromarray(pixels).save(paths['images'] / info['file_name'], quality=90)
    ids, segments = paint_segments(rng, shape, segment_categories)
    png_name = f'{image_id:012d}.png'
    Image.fromarray(panoptic_rgb(ids)).save(paths['masks'] / png_name)
    panoptic['images'].append(info)
    panoptic['annotations'].append({'image_id': image_id, 'file_name': png_name,
                                    'segments_info': segments})
    generated.append((info, ids, segments))
  paths['json'].write_text(json.dumps(panoptic))
  return paths, generated
