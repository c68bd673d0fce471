"""Finding and reading the images a user points a tool at.

Shared by the infer and attention_maps commands, so that both accept the same
`--images` values (files, directories, globs, comma-separated) and read every
JPEG/PNG the same way: EXIF orientation applied, grayscale and palette images
expanded to RGB, alpha dropped, 16-bit images scaled to 8 bits. An input that
cannot be read raises ImageError with a one-line reason, so a tool can report
it by name and go on with the others.
"""
import glob
import os

import numpy as np

# Pillow's format names. MPO is a JPEG with extra frames (many cameras and
# phones write one); its first frame, the photo, is used.
SUPPORTED_FORMATS = ('JPEG', 'MPO', 'PNG')
DIRECTORY_EXTENSIONS = ('.jpg', '.jpeg', '.png')
_GLOB_CHARACTERS = frozenset('*?[')
_SIXTEEN_BIT_MODES = frozenset(('I', 'I;16', 'I;16B', 'I;16L', 'I;16N'))


class ImageError(Exception):
  """An input that cannot be processed; the message says why."""


class NoImagesError(ValueError):
  """An --images value names no image; the message names the value."""


def _split_values(values):
  """Yields the single inputs of the --images values (comma-separated)."""
  for value in values:
    if os.path.exists(value):  # a name that itself contains a comma
      yield value
      continue
    for part in value.split(','):
      if part.strip():
        yield part.strip()


def _directory_images(directory):
  """The JPEG/PNG-named files directly in directory, sorted."""
  names = sorted(os.listdir(directory))
  return [os.path.join(directory, name) for name in names
          if name.lower().endswith(DIRECTORY_EXTENSIONS)
          and os.path.isfile(os.path.join(directory, name))]


def _expand_one(value):
  """The files of one input (a file, a directory or a glob); [] if none."""
  if os.path.isdir(value):
    return _directory_images(value)
  if os.path.exists(value):
    return [value]
  if not _GLOB_CHARACTERS & set(value):
    return []
  files = []
  for match in sorted(glob.glob(value, recursive=True)):
    files.extend(_directory_images(match) if os.path.isdir(match) else [match])
  return files


def expand_images(values):
  """Returns the image paths of the --images values, in order, without repeats.

  Each value is a file, a directory (its .jpg/.jpeg/.png files) or a glob, or
  several of these separated by commas.

  Raises:
    NoImagesError: there are no values, or one of them names nothing.
  """
  if not values:
    raise NoImagesError('--images is required')
  paths, seen = [], set()
  for value in _split_values(values):
    files = _expand_one(value)
    if not files:
      what = 'a directory with no .jpg/.jpeg/.png file' if os.path.isdir(
          value) else 'no such file, and no file matches it'
      raise NoImagesError(f'--images: {value!r}: {what}')
    for path in files:
      key = os.path.realpath(path)
      if key not in seen:
        seen.add(key)
        paths.append(path)
  return paths


def _sixteen_bit_to_rgb(image):
  """uint8 (H, W, 3) of a 16-bit grayscale PIL image, scaled by 255 / 65535."""
  values = np.clip(np.asarray(image, dtype=np.float64), 0, 65535)
  gray = np.rint(values * (255.0 / 65535.0)).astype(np.uint8)
  return np.repeat(gray[:, :, None], 3, axis=2)


def to_rgb_array(image):
  """uint8 (H, W, 3) of a decoded PIL image of any JPEG/PNG mode.

  Grayscale and palette images are expanded; an alpha channel is dropped;
  16-bit grayscale is scaled to 8 bits.
  """
  if image.mode in _SIXTEEN_BIT_MODES:
    return _sixteen_bit_to_rgb(image)
  if image.mode != 'RGB':
    has_alpha = 'A' in image.mode or 'transparency' in image.info
    image = (image.convert('RGBA') if has_alpha else image).convert('RGB')
  return np.asarray(image, dtype=np.uint8)


def load_image(path):
  """Returns the image at path as uint8 (height, width, 3), EXIF-oriented.

  Raises ImageError (message: why) for an unreadable, empty, corrupt or
  non-JPEG/PNG file.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from PIL import ImageOps  # pylint: disable=g-import-not-at-top

  try:
    if os.path.getsize(path) == 0:
      raise ImageError('empty file (0 bytes)')
    with Image.open(path) as image:
      if image.format not in SUPPORTED_FORMATS:
        raise ImageError(f'unsupported image format {image.format} '
                         '(supported: JPEG, PNG)')
      image_format = image.format
      try:
        return to_rgb_array(ImageOps.exif_transpose(image))
      except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(
            f'corrupt or truncated {image_format} data ({error})') from error
  except Image.UnidentifiedImageError as error:
    raise ImageError('not a JPEG or PNG image (its content is no image format '
                     'Pillow recognises)') from error
  except Image.DecompressionBombError as error:
    raise ImageError(f'too large to decode safely ({error})') from error
  except OSError as error:
    raise ImageError(f'cannot read the file ({error.strerror or error})') from error


def distinct_stems(paths):
  """A distinct output stem per path: its file stem, then stem_2, stem_3, ...

  Every stem's plain form is kept for its first use, so `a/x.jpg, b/x.jpg,
  x_2.png` give `x, x_3, x_2`.
  """
  stems = [os.path.splitext(os.path.basename(path))[0] for path in paths]
  reserved = set(stems)
  taken = set()
  result = []
  for stem in stems:
    name, suffix = stem, 1
    while name in taken or (suffix > 1 and name in reserved):
      suffix += 1
      name = f'{stem}_{suffix}'
    taken.add(name)
    result.append(name)
  return result
