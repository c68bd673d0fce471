r"""Writes the OD API label map of a COCO-format dataset from its instances JSON.

Why it is needed: the OD API's `create_coco_tf_record.py` stores each box's
class only as text (`image/object/class/text`, the category `name`), never as
a number. The OD API's decoder turns that text back into an id through the
label map (it matches `name` or `display_name`), and a name missing from the
label map becomes id -1, so the box is silently dropped. The label map must
therefore hold exactly the JSON's category names and ids. Deriving it from the
JSON's `categories` makes that true for any COCO-format dataset; for COCO 2017
it gives the same ids (1..90, with COCO's gaps) and names as
`object_detection/data/mscoco_label_map.pbtxt` in tensorflow/models (the PyPI
sdist of the OD API does not ship that file).

It also checks what would otherwise fail deep inside `create_coco_tf_record.py`
with a bare KeyError or assertion: the files must parse, have `images` and
`categories`, agree on the categories, and every annotation's `category_id`
must be one of them.

Usage (scripts/prepare_coco.sh runs it):
  python -m gc_detection.cli.coco_label_map \
      --annotations_file=annotations/instances_train2017.json \
      --annotations_file=annotations/instances_val2017.json \
      --output_path=data/coco/label_map.pbtxt
"""
import json
import os

from gc_detection import atomic_files
from gc_detection import user_errors


class CocoFormatError(ValueError, user_errors.UserError):
  """An instances JSON that create_coco_tf_record.py cannot convert."""


def load_instances(path):
  """Returns the parsed instances JSON at path, checked for the needed keys."""
  if not os.path.isfile(path):
    raise CocoFormatError(f'{path}: no such file (expected a COCO instances JSON)')
  try:
    with open(path) as source:
      instances = json.load(source)
  except json.JSONDecodeError as error:
    raise CocoFormatError(f'{path}: not valid JSON: {error}') from error
  if not isinstance(instances, dict):
    raise CocoFormatError(f'{path}: expected a JSON object with "images" and '
                          f'"categories", got {type(instances).__name__}')
  for key in ('images', 'categories'):
    if not isinstance(instances.get(key), list):
      raise CocoFormatError(f'{path}: expected a list under "{key}"')
  return instances


def category_names(instances, path):
  """Returns {id: name} of instances['categories'], checked.

  Ids must be integers >= 1 (the OD API reserves 0 for the background) and
  unique; names must be non-empty strings and unique.
  """
  names = {}
  if not instances['categories']:
    raise CocoFormatError(f'{path}: "categories" is empty')
  for index, category in enumerate(instances['categories']):
    where = f'{path}: categories[{index}]'
    category_id = category.get('id') if isinstance(category, dict) else None
    name = category.get('name') if isinstance(category, dict) else None
    if not isinstance(category_id, int) or isinstance(category_id, bool) or category_id < 1:
      raise CocoFormatError(f'{where}: "id" must be an integer >= 1 (0 is the '
                            f'OD API\'s background), got {category_id!r}')
    if not isinstance(name, str) or not name:
      raise CocoFormatError(f'{where}: "name" must be a non-empty string, got {name!r}')
    if category_id in names:
      raise CocoFormatError(f'{where}: id {category_id} is used twice')
    if name in names.values():
      raise CocoFormatError(f'{where}: name {name!r} is used twice')
    names[category_id] = name
  return names


def check_annotation_categories(instances, names, path):
  """Raises unless every annotation's category_id is one of `names`."""
  for annotation in instances.get('annotations', []):
    category_id = annotation.get('category_id')
    if category_id not in names:
      raise CocoFormatError(
          f'{path}: annotation {annotation.get("id")!r} has category_id '
          f'{category_id!r}, which is not in "categories" (ids '
          f'{sorted(names)})')


def categories_of_files(paths):
  """Returns {id: name} shared by every instances JSON in paths."""
  if not paths:
    raise CocoFormatError('no --annotations_file given')
  shared, shared_path = None, None
  for path in paths:
    instances = load_instances(path)
    names = category_names(instances, path)
    check_annotation_categories(instances, names, path)
    if shared is not None and names != shared:
      differing = sorted(set(names.items()) ^ set(shared.items()))
      raise CocoFormatError(
          f'{path} and {shared_path} have different categories (first '
          f'difference: id {differing[0][0]}); the splits of one dataset must '
          'share one label map')
    shared, shared_path = names, path
  return shared


def write_label_map(annotations_files, output_path):
  """Writes the label map of the files' categories atomically; returns {id: name}."""
  from gc_detection.data import tf_example  # pylint: disable=g-import-not-at-top
  names = categories_of_files(annotations_files)
  ids = sorted(names)
  atomic_files.write_text(output_path, tf_example.label_map_text(
      [names[category_id] for category_id in ids], ids))
  return names

