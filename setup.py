"""Packaging for gc_detection.

Requirements come from requirements/<stack>.txt, the same file scripts/setup.sh
installs from: tf215 (the default stack, Python 3.9-3.11) or tf220 (TensorFlow
2.20, Python 3.11-3.12). GC_STACK=tf215|tf220 chooses; unset, Python 3.12+
gets tf220 (TF 2.15 has no wheels for it) and older Pythons tf215. The OD API itself is not listed:
its PyPI sdist declares stale requirements, so it is installed separately with
--no-deps (see WORKSPACE.md).
"""
import os
import re
import sys

from setuptools import find_packages
from setuptools import setup

_HERE = os.path.dirname(os.path.abspath(__file__))
_STACK = os.environ.get('GC_STACK') or (
    'tf220' if sys.version_info >= (3, 12) else 'tf215')
_STACK_FILE = os.path.join(_HERE, 'requirements', f'{_STACK}.txt')


def read_section(path, section):
  """Returns the requirement lines of one `# [section]` block of a pin file."""
  lines, current = [], None
  with open(path) as pin_file:
    for raw in pin_file:
      line = raw.strip()
      header = re.fullmatch(r'#\s*\[([\w-]+)\]', line)
      if header:
        current = header.group(1)
      elif line and not line.startswith('#') and current == section:
        lines.append(line)
  if not lines:
    raise ValueError(f'{path}: section [{section}] is missing or empty')
  return lines


setup(
    name='gc_detection',
    version='0.1.0',
    description=('Global-context self-attention for the TF2 Object Detection '
                 'API (Faster R-CNN and RetinaNet).'),
    packages=find_packages(include=['gc_detection', 'gc_detection.*']),
    python_requires='>=3.9,<3.13',
    install_requires=read_section(_STACK_FILE, 'direct'),
    extras_require={'test': read_section(_STACK_FILE, 'test')},
    classifiers=[
        'Programming Language :: Python :: 3.9',
        'Programming Language :: Python :: 3.10',
        'Programming Language :: Python :: 3.11',
        'Programming Language :: Python :: 3.12',
    ],
)
