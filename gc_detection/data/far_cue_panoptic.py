"""Panoptic far-cue strips: things and stuff whose class only a far cue tells.

The far-cue strips of gc_detection.data.far_cue_strips (identical yellow
disks; at one end a cue band: sky, wooden table or street) with a ground
strip along the bottom of the disk zone: the same brown texture in every
scene, whose class is the scene's (cloud bank under the sun, tablecloth under
the egg yolks, pavement under the street lamps). So both the disks (things)
and the ground (stuff) can be named only from the band, far away.

Panoptic categories (gc_detection.model_garden.panoptic_fusion's ids):

  0 void
  1 sun  2 egg_yolk  3 street_lamp                       things (T = 3)
  4 background  5 sky  6 table  7 street                stuff told locally
  8 cloud_bank  9 tablecloth  10 pavement                stuff told by the band

Far: PANOPTIC_SPEC keeps every disk and ground pixel more than
min_cue_distance px from the band, beyond the reach of every convolution of
the stock ResNet-50-FPN Panoptic FPN computing an output there (its semantic
logits, its box and mask heads): tests/test_far_cue_panoptic_dataset.py
checks that their gradients with respect to the band pixels are exactly zero.
One stock path does see the whole strip: the GroupNorm of Panoptic FPN's
semantic head (official.vision's PanopticFPNFusion) normalises with per-image
statistics over all pixels, a global but spatially blind channel that both
models have; the test names it too.
"""
import dataclasses

import numpy as np

from gc_detection.data import far_cue_strips
from gc_detection.data import panoptic_records
from gc_detection.data import tf_example

THING_NAMES = tuple(disk for _, disk in far_cue_strips.SCENES)
GROUND_NAMES = ('cloud_bank', 'tablecloth', 'pavement')
STUFF_NAMES = (('background',) + tuple(cue for cue, _ in far_cue_strips.SCENES)
               + GROUND_NAMES)
CATEGORY_NAMES = ('void',) + THING_NAMES + STUFF_NAMES
NUM_THING_CLASSES = len(THING_NAMES)
NUM_STUFF_CLASSES = len(STUFF_NAMES)
GROUND_COLOUR = (150, 110, 70)
# Beyond the convolutions of the stock Panoptic FPN's outputs (see the module doc).
PANOPTIC_SPEC = far_cue_strips.StripSpec(height=64, width=512, min_cue_distance=352,
                                         ground_height=12)


@dataclasses.dataclass(frozen=True)
class PanopticStrip:
  """image uint8 (h, w, 3); category_mask, instance_mask uint8 (h, w)."""
  image: np.ndarray
  category_mask: np.ndarray
  instance_mask: np.ndarray
  scene: int
  cue_side: str
  name: str


def _ground_columns(spec, cue_side):
  zone = spec.disk_zone()
  return slice(spec.width - zone, spec.width) if cue_side == 'left' else slice(0, zone)


def panoptic_strip(strip, rng, spec):
  """The PanopticStrip of a far_cue_strips.Strip, with its ground drawn (rng)."""
  image = strip.image.astype(np.int16)
  category = np.zeros(strip.labels.shape, np.uint8)
  for semantic_id, name in enumerate(far_cue_strips.CLASS_NAMES):
    category[strip.labels == semantic_id] = CATEGORY_NAMES.index(name)
  ground = (slice(spec.height - spec.ground_height, spec.height),
            _ground_columns(spec, strip.cue_side))
  patch = image[ground]
  patch[:] = np.clip(np.array(GROUND_COLOUR, np.int16)
                     + rng.integers(-16, 17, size=patch.shape), 0, 255)
  category[ground] = CATEGORY_NAMES.index(GROUND_NAMES[strip.scene])
  instance = np.where(category <= NUM_THING_CLASSES, strip.instances, 0).astype(np.uint8)
  return PanopticStrip(image.astype(np.uint8), category, instance, strip.scene,
                       strip.cue_side, strip.name)


def generate(seed, count, spec=PANOPTIC_SPEC, prefix='far_cue'):
  """Yields `count` PanopticStrips, deterministic in seed.

  Raises:
    ValueError: a spec without a ground, or one that cannot hold a disk.
  """
  if spec.ground_height < 1:
    raise ValueError(f'ground_height: must be >= 1 for panoptic strips, got '
                     f'{spec.ground_height}')
  rng = np.random.default_rng((seed, 1))  # the ground's own stream
  for strip in far_cue_strips.generate(seed, count, spec, prefix):
    yield panoptic_strip(strip, rng, spec)


def to_example(strip, image_id):
  """The panoptic_records.PanopticExample of a PanopticStrip (image as PNG)."""
  boxes, classes, masks = panoptic_records.instances_of(
      strip.category_mask, strip.instance_mask, NUM_THING_CLASSES)
  height, width = strip.category_mask.shape
  return panoptic_records.PanopticExample(
      image_id=image_id, height=height, width=width,
      encoded_image=tf_example.encode_png(strip.image), boxes=boxes, classes=classes,
      instance_masks=masks, category_mask=strip.category_mask,
      instance_mask=strip.instance_mask, filename=strip.name)
