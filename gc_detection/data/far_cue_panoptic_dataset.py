r"""Writes a far-cue panoptic dataset (gc_detection.data.far_cue_panoptic).

Into output_dir (gc_detection.data.strip_datasets): train.tfrecord and
val.tfrecord of Model Garden panoptic tf.Examples
(gc_detection.data.panoptic_records), val_images/, and dataset.json with the
category names. Deterministic in the seed.
"""
from gc_detection.data import far_cue_panoptic
from gc_detection.data import panoptic_records
from gc_detection.data import strip_datasets


def _examples(strips):
  for image_id, strip in enumerate(strips, start=1):
    yield panoptic_records.to_tf_example(far_cue_panoptic.to_example(strip, image_id))


def write_dataset(output_dir, num_train, num_val, seed=0,
                  spec=far_cue_panoptic.PANOPTIC_SPEC, show_progress=True):
  """Writes the dataset; returns {name: path} (see strip_datasets.write).

  Raises:
    ValueError: a count below 1, or a spec that cannot hold a disk or has no
      ground (named).
  """
  if spec.ground_height < 1:
    raise ValueError(f'ground_height: must be >= 1 for panoptic strips, got '
                     f'{spec.ground_height}')
  summary = {'category_names': list(far_cue_panoptic.CATEGORY_NAMES),
             'num_thing_classes': far_cue_panoptic.NUM_THING_CLASSES,
             'num_stuff_classes': far_cue_panoptic.NUM_STUFF_CLASSES}
  return strip_datasets.write(output_dir, far_cue_panoptic.generate, _examples,
                              num_train, num_val, seed, spec, summary, show_progress)
