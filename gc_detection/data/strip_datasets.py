"""Writes a dataset of far-cue strips: two TFRecord splits, val images, a summary.

Shared by the segmentation (far_cue_segmentation_dataset) and panoptic
(far_cue_panoptic_dataset) datasets, which differ in their strips and
tf.Examples only. Files, in output_dir:

  train.tfrecord, val.tfrecord   one tf.Example per strip
  val_images/                    the val images as PNG
  dataset.json                   the generator's settings, names, counts

Deterministic in the seed (the val split uses seed + 1). Every file is written
atomically; progress goes to stderr.
"""
import dataclasses
import json
import os

from gc_detection import atomic_files
from gc_detection.data import far_cue_dataset
from gc_detection.data import segmentation_records
from gc_detection.data import tf_example


def write(output_dir, generate, to_examples, num_train, num_val, seed, spec, summary,
          show_progress=True):
  """Writes the files of the module docstring; returns {name: path}.

  Args:
    generate: (seed, count, spec, prefix) -> strips, each with `image` and `name`.
    to_examples: strips -> tf.train.Examples.
    summary: dict written to dataset.json with the seed, counts and spec.
  Raises:
    ValueError: a count below 1 or a spec that fails its check (named).
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
  train = progress_of(generate(seed, num_train, spec, 'train'), num_train, 'train split')
  segmentation_records.write_records(paths['train'], to_examples(train))
  val = list(progress_of(generate(seed + 1, num_val, spec, 'val'), num_val, 'val split'))
  segmentation_records.write_records(paths['val'], to_examples(val))
  for strip in val:
    atomic_files.write_bytes(os.path.join(paths['val_images'], strip.name),
                             tf_example.encode_png(strip.image))
  summary = {'seed': seed, 'num_train': num_train, 'num_val': num_val,
             'spec': dataclasses.asdict(spec), **summary}
  atomic_files.write_text(paths['summary'], json.dumps(summary, indent=2) + '\n')
  return paths
