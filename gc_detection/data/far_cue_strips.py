"""Wide strips whose disks look alike and are told apart only by a far cue (segmentation).

The segmentation counterpart of gc_detection.data.far_cue_scenes: every strip
holds 1..max_disks identical yellow disks and, at one narrow end, a cue band
(sky blue, wooden table, or asphalt with a white lane mark) that tells what
the disks are (sun, egg_yolk or street_lamp). The background is grey noise,
the same for every scene. Labels, one per pixel:

  0 background   1 sky   2 table   3 street   4 sun   5 egg_yolk   6 street_lamp

Far means outside the theoretical receptive field of every logit the stock
ResNet-50-FPN semantic model computes at a disk pixel (official.vision's
ResNet-50, FPN P2-P5, pyramid fusion at P2, two 3x3 head convolutions):
C4 291 px (see far_cue_scenes.C4_RECEPTIVE_FIELD), + 3 conv5 blocks of 3x3 at
stride 32 (192), + the FPN's 3x3 output conv on P5 (64), + the bilinear
upsampling of P5 to P2 (one P5 cell, 32), + two 3x3 head convs at stride 4
(16), + the bilinear upsampling of the logits (4) = 599 px. Every disk pixel is
more than half of that from the band, so the stock model cannot see the cue
from a disk; a global-context module after C5 can. Which end holds the band
is drawn per strip, independently of the scene. Deterministic in the seed.
"""
import dataclasses

import numpy as np

from gc_detection.data import far_cue_scenes

SCENES = (('sky', 'sun'), ('table', 'egg_yolk'), ('street', 'street_lamp'))
CLASS_NAMES = ('background',) + tuple(cue for cue, _ in SCENES) + tuple(
    disk for _, disk in SCENES)
SEGMENTATION_RECEPTIVE_FIELD = 599
SIDES = ('left', 'right')
_LANE_MARK = 235


@dataclasses.dataclass(frozen=True)
class StripSpec:
  """How strips are drawn (all sizes in px).

  Attributes:
    height, width: the strip's size (multiples of 32 suit the FPN).
    cue_width: the band's width at one end.
    min_radius, max_radius: disk radius range (every class alike).
    max_disks: 1..max_disks disks per strip, all of the strip's scene.
    min_cue_distance: px between the band and the nearest disk pixel.
    ground_height: bottom rows kept free of disks (for the ground of
      gc_detection.data.far_cue_panoptic; 0 here).
  """
  height: int = 64
  width: int = 448
  cue_width: int = 32
  min_radius: int = 8
  max_radius: int = 16
  max_disks: int = 4
  min_cue_distance: int = SEGMENTATION_RECEPTIVE_FIELD // 2 + 1
  ground_height: int = 0

  def disk_zone(self):
    """Width of the zone (at the end away from the band) disks lie in."""
    return self.width - self.cue_width - self.min_cue_distance

  def check(self):
    """Raises ValueError naming the field when the strip cannot hold a disk."""
    if not 0 < self.min_radius <= self.max_radius:
      raise ValueError(f'min_radius, max_radius: need 0 < {self.min_radius} <= '
                       f'{self.max_radius}')
    if self.height - self.ground_height < 2 * self.max_radius + 1:
      raise ValueError(f'height: {self.height} px (less ground_height '
                       f'{self.ground_height}) cannot hold a disk of radius '
                       f'{self.max_radius}')
    if self.disk_zone() < 2 * self.max_radius + 1:
      raise ValueError(
          f'width: {self.width} px leaves {self.disk_zone()} px for the disks after '
          f'the cue band ({self.cue_width}) and min_cue_distance '
          f'({self.min_cue_distance}); need at least {2 * self.max_radius + 1}')
    if self.max_disks < 1:
      raise ValueError(f'max_disks: must be >= 1, got {self.max_disks}')


@dataclasses.dataclass(frozen=True)
class Strip:
  """image: uint8 (height, width, 3); labels: uint8 (height, width) class ids;
  instances: uint8 (height, width), 1..n for the visible pixels of disk n
  (disks drawn later cover earlier ones), 0 elsewhere."""
  image: np.ndarray
  labels: np.ndarray
  instances: np.ndarray
  scene: int
  cue_side: str
  name: str


def _draw_band(image, labels, rng, scene, columns):
  cue, disk = SCENES[scene]
  band = image[:, columns]
  colour = np.array(far_cue_scenes.BAND_COLOURS[disk], np.int16)
  band[:] = np.clip(colour + rng.integers(-12, 13, size=band.shape), 0, 255)
  if cue == 'street':  # a dashed white lane mark down the band
    middle = band.shape[1] // 2
    for start in range(int(rng.integers(0, 24)), band.shape[0], 32):
      band[start:start + 16, middle - 1:middle + 2] = _LANE_MARK
  labels[:, columns] = CLASS_NAMES.index(cue)


def _draw_disks(image, labels, instances, rng, spec, scene, cue_side):
  disk_class = CLASS_NAMES.index(SCENES[scene][1])
  rows, cols = np.mgrid[:spec.height, :spec.width]
  for number in range(1, int(rng.integers(1, spec.max_disks + 1)) + 1):
    radius = int(rng.integers(spec.min_radius, spec.max_radius + 1))
    from_far_end = int(rng.integers(radius, spec.disk_zone() - radius))
    centre_x = spec.width - 1 - from_far_end if cue_side == 'left' else from_far_end
    centre_y = int(rng.integers(radius, spec.height - spec.ground_height - radius))
    disk = (rows - centre_y) ** 2 + (cols - centre_x) ** 2 <= radius ** 2
    image[disk] = far_cue_scenes.OBJECT_COLOUR
    labels[disk] = disk_class
    instances[disk] = number


def generate_strip(rng, spec, name):
  """One Strip drawn with the numpy Generator rng."""
  scene = int(rng.integers(len(SCENES)))
  cue_side = SIDES[int(rng.integers(len(SIDES)))]
  image = rng.integers(*far_cue_scenes.BACKGROUND_RANGE,
                       size=(spec.height, spec.width, 3)).astype(np.int16)
  labels = np.zeros((spec.height, spec.width), np.uint8)
  instances = np.zeros((spec.height, spec.width), np.uint8)
  columns = (slice(0, spec.cue_width) if cue_side == 'left'
             else slice(spec.width - spec.cue_width, spec.width))
  _draw_band(image, labels, rng, scene, columns)
  _draw_disks(image, labels, instances, rng, spec, scene, cue_side)
  return Strip(image.astype(np.uint8), labels, instances, scene, cue_side, name)


def generate(seed, count, spec=StripSpec(), prefix='far_cue'):
  """Yields `count` Strips named '<prefix>_<index>.png', deterministic in seed."""
  spec.check()
  rng = np.random.default_rng(seed)
  for index in range(count):
    yield generate_strip(rng, spec, f'{prefix}_{index:05d}.png')
