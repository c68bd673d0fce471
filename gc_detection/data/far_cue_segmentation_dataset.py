r"""Writes a far-cue segmentation dataset (gc_detection.data.far_cue_strips).

Into output_dir:

  train.tfrecord, val.tfrecord   Model Garden semantic-segmentation tf.Examples
                                 (PNG images and label maps)
  val_images/                    the val images as PNG
  dataset.json                   the generator's settings, class names, counts

Deterministic in the seed (the val split uses seed + 1). Every file is written
atomically; progress goes to stderr.
"""
import dataclasses
import json
import os

from gc_detection import atomic_files
from gc_detection.data import far_cue_dataset
from gc_detection.data import far_cue_strips
from gc_detection.data import segmentation_records
from gc_detection.data import tf_example


def _examples(strips):
  for strip in strips:
    yield segmentation_records.segmentation_example(
        strip.labels, strip.name, image=strip.image)


def write_dataset(output_dir, num_train, num_val, seed=0,
                  spec=far_cue_strips.StripSpec(), show_progress=True):
  """Writes the files of the module docstring; returns {name: path}.

  Raises:
    ValueError: a count below 1 or a spec that cannot hold a disk (named).
  """
  spec.check()
  if num_train < 1 or num_val < 1:
    raise ValueError(f'num_train, num_val: must be >= 1, got {num_train}, {num_val}')
  paths = {'train': os.path.join(output_dir, 'train.tfrecord'),
           'val': os.path.join(output_dir, 'val.tfrecord'),
           'val_images': os.path.join(output_dir, 'val_images'),
           'summary': os.path.join(output_dir, 'dataset.json')}
  progress_of = (far_cue_dataset.progress if show_progress
                 else (lambda items, total, description: items))
  train = progress_of(far_cue_strips.generate(seed, num_train, spec, 'train'), num_train,
                      'train split')
  segmentation_records.write_records(paths['train'], _examples(train))
  val = list(progress_of(far_cue_strips.generate(seed + 1, num_val, spec, 'val'),
                         num_val, 'val split'))
  segmentation_records.write_records(paths['val'], _examples(val))
  for strip in val:
    atomic_files.write_bytes(os.path.join(paths['val_images'], strip.name),
                             tf_example.encode_png(strip.image))
  summary = {'seed': seed, 'num_train': num_train, 'num_val': num_val,
             'spec': dataclasses.asdict(spec),
             'class_names': list(far_cue_strips.CLASS_NAMES),
             'num_classes': len(far_cue_strips.CLASS_NAMES),
             'receptive_field': far_cue_strips.SEGMENTATION_RECEPTIVE_FIELD}
  atomic_files.write_text(paths['summary'], json.dumps(summary, indent=2) + '\n')
  return paths
