"""COCO panoptic annotations as semantic-segmentation TFRecords (paper Table 4).

The label space is the semantic branch of Panoptic FPN as Detectron2 evaluates
it (its datasets/prepare_panoptic_fpn.py): class 0 is every pixel of a "thing"
segment (a category with isthing=1, crowd segments included), classes 1..N-1
are the stuff categories (isthing=0) in increasing category-id order, and 255
is unlabelled (panoptic id 0, or an id that no segment of the image lists).
COCO 2017 has 53 stuff categories, so N = 54.

A panoptic PNG stores each pixel's segment id as R + 256 * G + 256**2 * B.
Each tf.train.Example holds what official.vision.dataloaders.
segmentation_input.Decoder reads: the original image bytes, its size, and the
label map as a single-channel uint8 PNG of the same size. The shards,
`<output_dir>/<split>-00000-of-000NN.tfrecord`, are each written through a
temporary file (gc_detection.data.segmentation_records), so an error or
Ctrl-C never leaves a truncated one; the classes go to `<output_dir>/classes.json`.
"""
import glob
import io
import itertools
import json
import os
import sys

import numpy as np
from PIL import Image

from gc_detection import atomic_files
from gc_detection import user_errors

THING_CLASS = 0
IGNORE_LABEL = 255
CLASSES_FILE = 'classes.json'
DEFAULT_NUM_SHARDS = {'train': 32, 'val': 8}
_SHARD_PATTERN = '{split}-{index:05d}-of-{count:05d}.tfrecord'


class PanopticFormatError(ValueError, user_errors.UserError):
  """A panoptic JSON, PNG or image that cannot be converted; the message names it."""


def load_panoptic(path):
  """Returns the panoptic JSON at path, checked for the keys the conversion reads."""
  try:
    with open(path) as source:
      panoptic = json.load(source)
  except (OSError, json.JSONDecodeError) as error:
    raise PanopticFormatError(f'{path}: cannot read the panoptic JSON: {error}') from error
  required = {'images': ('id', 'file_name'),
              'annotations': ('image_id', 'file_name', 'segments_info'),
              'categories': ('id', 'name', 'isthing')}
  if not isinstance(panoptic, dict):
    raise PanopticFormatError(f'{path}: expected a JSON object with {sorted(required)}')
  for key, fields in required.items():
    if not isinstance(panoptic.get(key), list):
      raise PanopticFormatError(f'{path}: expected a list under "{key}"')
    for index, entry in enumerate(panoptic[key]):
      missing = [field for field in fields
                 if not isinstance(entry, dict) or field not in entry]
      if missing:
        raise PanopticFormatError(f'{path}: {key}[{index}] has no "{missing[0]}"')
  return panoptic


def label_space(categories, path):
  """The classes of a panoptic JSON's `categories` (read from path).

  Returns:
    ({category id: class} of every category, the classes.json dict:
    {'num_classes': N, 'names': ['things', stuff names...],
    'category_ids': [None, stuff ids...]}).
  """
  ids = [category['id'] for category in categories]
  twice = sorted({category_id for category_id in ids if ids.count(category_id) > 1})
  if twice:
    raise PanopticFormatError(f'{path}: category id {twice[0]} is used twice')
  stuff = sorted((c for c in categories if not c['isthing']), key=lambda c: c['id'])
  if len(stuff) > IGNORE_LABEL - 1:
    raise PanopticFormatError(f'{path}: {len(stuff)} stuff categories; at most '
                              f'{IGNORE_LABEL - 1} fit a uint8 label map beside 255')
  category_to_class = {c['id']: THING_CLASS for c in categories if c['isthing']}
  category_to_class.update({c['id']: index for index, c in enumerate(stuff, start=1)})
  return category_to_class, {'num_classes': 1 + len(stuff),
                             'names': ['things'] + [c['name'] for c in stuff],
                             'category_ids': [None] + [c['id'] for c in stuff]}


def panoptic_ids(panoptic_rgb):
  """The segment ids, int64 (H, W), of a uint8 (H, W, 3) panoptic PNG's pixels."""
  rgb = np.asarray(panoptic_rgb, dtype=np.int64)
  return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def segment_classes(segments_info, category_to_class, source='panoptic PNG'):
  """{segment id: class} of an annotation's segments_info; source names the PNG in errors.

  Raises:
    PanopticFormatError: a segment's category_id is not in category_to_class.
  """
  classes = {}
  for segment in segments_info:
    category_id = segment.get('category_id')
    if category_id not in category_to_class:
      raise PanopticFormatError(
          f'{source}: segment {segment.get("id")!r} has category_id {category_id!r}, '
          'which is not in the JSON\'s "categories"')
    classes[segment.get('id')] = category_to_class[category_id]
  classes.pop(0, None)  # id 0 is void whatever segments_info says
  return classes


def semantic_labels(panoptic_rgb, segments_info, category_to_class, source='panoptic PNG'):
  """The semantic label map of one panoptic PNG.

  Args:
    panoptic_rgb: uint8 array of shape (H, W, 3), the panoptic PNG's pixels.
    segments_info: the annotation's segments, dicts with 'id' and 'category_id'.
    category_to_class: {category id: class}, as label_space returns it.
    source: names the PNG in errors (segment_classes raises them).

  Returns:
    uint8 array of shape (H, W): each pixel's class; IGNORE_LABEL where the id
    is 0 or no segment lists it.
  """
  class_of_segment = segment_classes(segments_info, category_to_class, source)
  unique_ids, inverse = np.unique(panoptic_ids(panoptic_rgb), return_inverse=True)
  classes = np.array([class_of_segment.get(int(segment_id), IGNORE_LABEL)
                      for segment_id in unique_ids], dtype=np.uint8)
  return classes[inverse].reshape(np.shape(panoptic_rgb)[:2])


def read_panoptic_png(path):
  """The uint8 (H, W, 3) pixels of the panoptic PNG at path."""
  try:
    with Image.open(path) as image:
      mode, pixels = image.mode, np.asarray(image)
  except OSError as error:
    raise PanopticFormatError(f'{path}: cannot read the panoptic PNG: {error}') from error
  if mode != 'RGB':
    raise PanopticFormatError(f'{path}: a panoptic PNG must be RGB, got mode {mode}')
  return pixels


def read_image(path):
  """(bytes, format, (H, W)) of the image file at path, its bytes unchanged."""
  try:
    with open(path, 'rb') as source:
      encoded = source.read()
    with Image.open(io.BytesIO(encoded)) as image:  # reads the header only
      return encoded, image.format.lower(), (image.height, image.width)
  except OSError as error:
    raise PanopticFormatError(f'{path}: cannot read the image: {error}') from error


def labelled_image(image_info, annotation, image_dir, masks_dir, category_to_class):
  """(image bytes, format, uint8 (H, W) labels) of one JSON image and its annotation."""
  image_path = os.path.join(image_dir, image_info['file_name'])
  png_path = os.path.join(masks_dir, annotation['file_name'])
  encoded, image_format, size = read_image(image_path)
  panoptic_rgb = read_panoptic_png(png_path)
  if panoptic_rgb.shape[:2] != size:
    raise PanopticFormatError(f'{png_path} is {panoptic_rgb.shape[:2]} (H, W) but '
                              f'{image_path} is {size}')
  labels = semantic_labels(panoptic_rgb, annotation['segments_info'], category_to_class,
                           source=png_path)
  return encoded, image_format, labels


def to_tf_example(image_info, encoded, image_format, labels):
  """The segmentation tf.train.Example of a JSON image; labels is uint8 (H, W)."""
  # Lazy: the command reports wrong flags before TensorFlow's seconds of import.
  from gc_detection.data import segmentation_records  # pylint: disable=g-import-not-at-top
  return segmentation_records.segmentation_example(
      labels, str(image_info['id']), encoded_image=encoded, image_format=image_format,
      filename=image_info['file_name'])


def images_to_convert(panoptic, path, masks_dir, category_to_class, max_images):
  """[(image info, annotation)] in the JSON's image order, checked."""
  annotations = {annotation['image_id']: annotation
                 for annotation in panoptic['annotations']}
  pairs = []
  for image_info in panoptic['images'][:max_images]:
    annotation = annotations.get(image_info['id'])
    if annotation is None:
      raise PanopticFormatError(f'{path}: image {image_info["id"]} '
                                f'({image_info["file_name"]}) has no annotation')
    # Before the hours of conversion, not after.
    segment_classes(annotation['segments_info'], category_to_class,
                    os.path.join(masks_dir, annotation['file_name']))
    pairs.append((image_info, annotation))
  if not pairs:
    raise PanopticFormatError(f'{path}: no images')
  return pairs


def write_shards(pairs, make_example, output_dir, split, num_shards, progress_every):
  """Writes make_example(image info, annotation) of every pair into shards.

  The examples go, in the pairs' order, in contiguous runs to min(num_shards,
  number of pairs) shards `<output_dir>/<split>-0000i-of-000NN.tfrecord`.
  Shards of the split with another shard count (an earlier run's) are removed
  once every new shard is written, so that `<split>-*.tfrecord` matches this
  run's only. A line on stderr every progress_every images tells the progress.

  Returns:
    (the shard paths, the removed paths).
  """
  num_shards = min(num_shards, len(pairs))
  paths = [os.path.join(output_dir, _SHARD_PATTERN.format(split=split, index=index,
                                                          count=num_shards))
           for index in range(num_shards)]
  # Lazy: the commands report wrong flags before TensorFlow's seconds of import.
  from gc_detection.data import segmentation_records  # pylint: disable=g-import-not-at-top

  def examples():
    for count, (image_info, annotation) in enumerate(pairs, start=1):
      example = make_example(image_info, annotation)
      if count % progress_every == 0 or count == len(pairs):
        print(f'{split}: {count}/{len(pairs)} images', file=sys.stderr, flush=True)
      yield example

  stream = examples()
  for index, path in enumerate(paths):
    shard_size = ((index + 1) * len(pairs) // num_shards
                  - index * len(pairs) // num_shards)
    segmentation_records.write_records(path, itertools.islice(stream, shard_size))
  stale = sorted(set(glob.glob(os.path.join(glob.escape(output_dir),
                                            f'{split}-[0-9]*-of-[0-9]*.tfrecord')))
                 - set(paths))
  for path in stale:
    os.remove(path)
  return paths, stale


def write_split(annotations_file, masks_dir, image_dir, output_dir, split, num_shards,
                max_images=None, progress_every=500):
  """Writes one split's shards (write_shards) and classes.json; returns a summary dict."""
  panoptic = load_panoptic(annotations_file)
  category_to_class, classes = label_space(panoptic['categories'], annotations_file)
  pairs = images_to_convert(panoptic, annotations_file, masks_dir, category_to_class,
                            max_images)

  def make_example(image_info, annotation):
    labelled = labelled_image(image_info, annotation, image_dir, masks_dir,
                              category_to_class)
    return to_tf_example(image_info, *labelled)

  paths, stale = write_shards(pairs, make_example, output_dir, split, num_shards,
                              progress_every)
  classes_file = os.path.join(output_dir, CLASSES_FILE)
  atomic_files.write_text(classes_file, json.dumps(classes, indent=1) + '\n')
  return {'num_images': len(pairs), 'shards': paths, 'removed': stale,
          'classes_file': classes_file, **classes}
