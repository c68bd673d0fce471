"""Scenes whose objects look identical and differ only by a far-away cue.

The paper's Fig. 1: the same yellow disk is the sun in the sky, an egg yolk on
a table, a lamp over a street. Here every object is the same yellow disk (one
colour, one radius range, for every class); the class is told by the scene
alone, by a cue drawn far from every object of the image:

- 'band': a strip along one image edge: sky blue (sun), wooden table
  (egg_yolk) or asphalt with a white lane mark (street_lamp).
- 'companion': a small object along one image edge: a white cloud (sun), a
  grey fork (egg_yolk) or a red car (street_lamp).

Far means outside the receptive field of the features a ResNet Faster R-CNN
classifies the object from. Its box classifier reads the C4 cells that
RoIAlign samples inside the box (bilinear sampling reaches one cell, 16 px,
beyond it), and a C4 cell of ResNet-50/101/152 sees at most
`C4_RECEPTIVE_FIELD // 2` px either side of its centre. The cue is placed
more than `min_cue_distance` (default: that half field) from the box grown by
one cell, along the axis across the cue's edge, so that no feature the stock
detector classifies from can depend on it: only global context can.

Which edge holds the cue is drawn per image independently of the class, so
an object's position says nothing about its class either. Everything is
deterministic in the seed.
"""
import dataclasses

import numpy as np

from gc_detection.data import tf_example

CLASSES = ('sun', 'egg_yolk', 'street_lamp')
CUE_KINDS = ('band', 'companion')
OBJECT_COLOUR = (250, 205, 30)
# Theoretical receptive field (px) of ResNet-50 conv4_block6 (the C4 output);
# deeper ResNets only reach further, so their field is larger still:
# conv1 7 s2, pool 3 s2, conv2 3x(3x3), conv3 4x(3x3) from stride 8, conv4
# 6x(3x3) from stride 16: 7 + 2*2 + 3*2*4 + 4*2*8 + 6*2*16 = 291.
C4_RECEPTIVE_FIELD = 291
C4_STRIDE = 16
EDGES = ('top', 'bottom', 'left', 'right')

BAND_COLOURS = {'sun': (95, 160, 235), 'egg_yolk': (140, 85, 40),
                 'street_lamp': (45, 45, 50)}
BACKGROUND_RANGE = (90, 150)  # grey noise, the same for every class


@dataclasses.dataclass(frozen=True)
class SceneSpec:
  """How scenes are drawn.

  Attributes:
    size: images are size x size pixels.
    cue_kinds: the cue kinds to draw from (a subset of CUE_KINDS).
    min_radius, max_radius: disk radius range in px (every class alike).
    max_objects: 1..max_objects disks per image, all of the image's class.
    min_cue_distance: px between the cue and the object's box grown by one
      C4 cell, across the cue's edge.
  """
  size: int = 256
  cue_kinds: tuple = CUE_KINDS
  min_radius: int = 10
  max_radius: int = 16
  max_objects: int = 2
  min_cue_distance: int = C4_RECEPTIVE_FIELD // 2 + 1

  def cue_depth(self):
    """Largest extent (px) of a cue away from its edge."""
    return max(20, self.size // 8)

  def object_zone(self):
    """Depth (px from the far edge) within which every disk box must lie."""
    return self.size - self.cue_depth() - self.min_cue_distance - C4_STRIDE

  def check(self):
    """Raises ValueError naming the field when the scene cannot be drawn."""
    unknown = set(self.cue_kinds) - set(CUE_KINDS)
    if not self.cue_kinds or unknown:
      raise ValueError(f'cue_kinds: expected a non-empty subset of {CUE_KINDS}, '
                       f'got {tuple(self.cue_kinds)}')
    if not 4 <= self.min_radius <= self.max_radius:
      raise ValueError(f'min_radius, max_radius: expected 4 <= min_radius <= '
                       f'max_radius, got {self.min_radius}, {self.max_radius}')
    if self.max_objects < 1:
      raise ValueError(f'max_objects: must be >= 1, got {self.max_objects}')
    if self.object_zone() < 2 * self.max_radius:
      raise ValueError(
          f'size: {self.size} px leave {self.object_zone()} px for the objects once '
          f'the cue ({self.cue_depth()} px) is {self.min_cue_distance} px '
          f'(min_cue_distance) + one C4 cell away; a disk needs '
          f'{2 * self.max_radius} (2 x max_radius): use a larger size or smaller '
          'min_cue_distance')


def _disk_mask(size, centre_y, centre_x, radius):
  rows, cols = np.ogrid[:size, :size]
  return (rows - centre_y) ** 2 + (cols - centre_x) ** 2 <= radius ** 2


def _ellipse_mask(size, centre_y, centre_x, radius_y, radius_x):
  rows, cols = np.ogrid[:size, :size]
  return ((rows - centre_y) / radius_y) ** 2 + ((cols - centre_x) / radius_x) ** 2 <= 1


def _band_slices(edge, depth, size):
  """(row slice, column slice) of a strip `depth` px deep along `edge`."""
  whole = slice(0, size)
  return {'top': (slice(0, depth), whole), 'bottom': (slice(size - depth, size), whole),
          'left': (whole, slice(0, depth)), 'right': (whole, slice(size - depth, size))}[edge]


def _draw_band(image, rng, class_name, edge, depth):
  """Fills the strip along `edge` with the class's scene (in place)."""
  size = image.shape[0]
  rows, cols = _band_slices(edge, depth, size)
  colour = np.array(BAND_COLOURS[class_name], np.int16)
  noise = rng.integers(-12, 13, size=image[rows, cols].shape)
  image[rows, cols] = np.clip(colour + noise, 0, 255)
  if class_name == 'street_lamp':  # dashed white lane mark along the strip
    strip = image[rows, cols]
    along = 1 if edge in ('top', 'bottom') else 0
    middle = depth // 2
    for start in range(int(rng.integers(0, 24)), size, 32):
      if along:
        strip[middle - 1:middle + 2, start:start + 16] = 235
      else:
        strip[start:start + 16, middle - 1:middle + 2] = 235


def _to_image(edge, size, along, across):
  """Image (y, x) of a point `along` the edge and `across` (px from the edge)."""
  return {'top': (across, along), 'bottom': (size - 1 - across, along),
          'left': (along, across), 'right': (along, size - 1 - across)}[edge]


def _fill(image, edge, along, across, colour):
  """Fills the rectangle [along[0], along[1]) x [across[0], across[1]) of edge coordinates."""
  size = image.shape[0]
  (y0, x0), (y1, x1) = (_to_image(edge, size, along[0], across[0]),
                        _to_image(edge, size, along[1] - 1, across[1] - 1))
  image[max(min(y0, y1), 0):max(y0, y1) + 1, max(min(x0, x1), 0):max(x0, x1) + 1] = colour


def _fill_disk(image, edge, along, across, radius, colour):
  size = image.shape[0]
  image[_disk_mask(size, *_to_image(edge, size, along, across), radius)] = colour


def _draw_companion(image, rng, class_name, edge, depth):
  """Draws the class's companion object within `depth` px of `edge` (in place).

  Shapes are laid out in edge coordinates: `along` the edge and `across`
  (distance from it), so the same code draws them at any edge.
  """
  size = image.shape[0]
  along = int(rng.integers(depth + 8, size - depth - 8))
  unit = max(2, depth // 8)
  if class_name == 'sun':  # a cloud: three white puffs
    for offset, radius in ((-3 * unit, 3 * unit), (0, 4 * unit), (3 * unit, 3 * unit)):
      _fill_disk(image, edge, along + offset, depth // 2, radius, (240, 240, 245))
  elif class_name == 'egg_yolk':  # a fork lying along the edge: handle and three prongs
    colour = (180, 180, 190)
    _fill(image, edge, (along - 7 * unit, along + 2 * unit), (3 * unit, 5 * unit), colour)
    _fill(image, edge, (along + 2 * unit, along + 3 * unit), (unit, 7 * unit), colour)
    for prong in (unit, 3 * unit + unit // 2, 6 * unit):
      _fill(image, edge, (along + 3 * unit, along + 7 * unit), (prong, prong + unit),
            colour)
  else:  # street_lamp: a red car body with two dark wheels
    _fill(image, edge, (along - 7 * unit, along + 7 * unit), (2 * unit, 6 * unit),
          (200, 30, 30))
    for wheel in (along - 4 * unit, along + 4 * unit):
      _fill_disk(image, edge, wheel, 2 * unit, unit + unit // 2, (20, 20, 20))
  # Keep the cue inside its strip: nothing may reach towards the objects.
  rows, cols = _band_slices(edge, depth, size)
  outside = np.ones((size, size), bool)
  outside[rows, cols] = False
  return outside


def _place_disks(rng, spec, edge, count):
  """Disk (centre y, centre x, radius) list, inside the zone opposite `edge`."""
  size, zone = spec.size, spec.object_zone()
  disks = []
  for _ in range(100 * count):
    if len(disks) == count:
      break
    radius = int(rng.integers(spec.min_radius, spec.max_radius + 1))
    along = int(rng.integers(radius, size - radius))
    # Distance of the disk centre from the edge *opposite* the cue.
    from_far_edge = int(rng.integers(radius, zone - radius))
    opposite = {'top': 'bottom', 'bottom': 'top', 'left': 'right', 'right': 'left'}[edge]
    centre_y, centre_x = _to_image(opposite, size, along, from_far_edge)
    if all((centre_y - y) ** 2 + (centre_x - x) ** 2 > (radius + r + 4) ** 2
           for y, x, r in disks):
      disks.append((centre_y, centre_x, radius))
  return disks


def cue_distance(box, edge, depth, size):
  """Px between a [ymin, xmin, ymax, xmax] box grown by one C4 cell and the cue strip."""
  ymin, xmin, ymax, xmax = box
  return {'top': ymin - C4_STRIDE - depth, 'bottom': size - depth - (ymax + C4_STRIDE),
          'left': xmin - C4_STRIDE - depth, 'right': size - depth - (xmax + C4_STRIDE)}[edge]


@dataclasses.dataclass(frozen=True)
class Scene:
  """One generated image: the DetectionExample plus how its cue was drawn."""
  example: tf_example.DetectionExample
  cue_kind: str
  cue_edge: str
  cue_depth: int


def generate_scene(rng, spec, index, prefix):
  """Draws one Scene with numpy Generator `rng`."""
  size = spec.size
  class_index = int(rng.integers(len(CLASSES)))
  class_name = CLASSES[class_index]
  cue_kind = spec.cue_kinds[int(rng.integers(len(spec.cue_kinds)))]
  edge = EDGES[int(rng.integers(len(EDGES)))]
  depth = spec.cue_depth() if cue_kind == 'companion' else int(
      rng.integers(spec.cue_depth() * 2 // 3, spec.cue_depth() + 1))
  image = rng.integers(*BACKGROUND_RANGE, size=(size, size, 3)).astype(np.int16)
  if cue_kind == 'band':
    _draw_band(image, rng, class_name, edge, depth)
  else:
    background = image.copy()
    outside = _draw_companion(image, rng, class_name, edge, depth)
    image[outside] = background[outside]
  disks = _place_disks(rng, spec, edge, int(rng.integers(1, spec.max_objects + 1)))
  boxes = []
  for centre_y, centre_x, radius in disks:
    image[_disk_mask(size, centre_y, centre_x, radius)] = OBJECT_COLOUR
    box = (centre_y - radius, centre_x - radius, centre_y + radius + 1,
           centre_x + radius + 1)
    if cue_distance(box, edge, depth, size) <= spec.min_cue_distance - 1:
      raise AssertionError(f'object {box} too close to the {edge} cue')  # a bug here
    boxes.append(box)
  example = tf_example.DetectionExample(
      image=image.astype(np.uint8),
      boxes=np.array(boxes, dtype=np.float64),
      class_ids=np.full(len(boxes), class_index + 1),
      class_names=[class_name] * len(boxes),
      filename=f'{prefix}_{index:06d}.png')
  return Scene(example, cue_kind, edge, depth)


def generate(seed, count, spec=SceneSpec(), prefix='far_cue'):
  """Yields `count` Scenes, deterministic in (seed, spec)."""
  spec.check()
  rng = np.random.default_rng(seed)
  for index in range(count):
    yield generate_scene(rng, spec, index, f'{prefix}_{seed}')
