r"""Writes a far-cue segmentation dataset (gc_detection.data.far_cue_strips).

Into output_dir (gc_detection.data.strip_datasets): train.tfrecord and
val.tfrecord of Model Garden semantic-segmentation tf.Examples (PNG images and
label maps), val_images/, and dataset.json with the class names.
Deterministic in the seed.
"""
from gc_detection.data import far_cue_strips
from gc_detection.data import segmentation_records
from gc_detection.data import strip_datasets


def _examples(strips):
  for strip in strips:
    yield segmentation_records.segmentation_example(
        strip.labels, strip.name, image=strip.image)


def write_dataset(output_dir, num_train, num_val, seed=0,
                  spec=far_cue_strips.StripSpec(), show_progress=True):
  """Writes the dataset; returns {name: path} (see strip_datasets.write).

  Raises:
    ValueError: a count below 1 or a spec that cannot hold a disk (named).
  """
  summary = {'class_names': list(far_cue_strips.CLASS_NAMES),
             'num_classes': len(far_cue_strips.CLASS_NAMES),
             'receptive_field': far_cue_strips.SEGMENTATION_RECEPTIVE_FIELD}
  return strip_datasets.write(output_dir, far_cue_strips.generate, _examples, num_train,
                              num_val, seed, spec, summary, show_progress)
