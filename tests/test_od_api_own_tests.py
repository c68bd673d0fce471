"""The OD API's own TF2 tests pass with gc_detection registered.

gc_detection adds types to the OD API's feature-extractor class maps and
wraps its meta-architecture builders. The OD API's contract for those maps
is "type name -> class": its own model_builder_tf2_test iterates them and
checks `isinstance(model._feature_extractor, extractor_class)`. Here the
tests installed with the OD API run in a fresh process in which
gc_detection is registered (and checked to be: its types are in the maps).

Selection (for CI time): every model-builder test but CenterNet's (CenterNet
has no class map gc_detection touches), the Faster R-CNN ResNet extractor
tests, and the SSD ResNet-FPN extractor tests of ResNet-50 (101 and 152 run
the same code on deeper stock networks). Left out: the OD API's
keras_models/resnet_v1_tf2_test, which fails on this stack without
gc_detection too (`keras.applications.resnet` has no `ResNet` in Keras 2.15).
"""
import os
import sys

import object_detection

import conftest

OD_API_DIR = os.path.dirname(object_detection.__file__)
OWN_TESTS = (
    ('builders/model_builder_tf2_test.py', 'not center_net'),
    ('models/faster_rcnn_resnet_keras_feature_extractor_tf2_test.py', None),
    ('models/ssd_resnet_v1_fpn_feature_extractor_tf2_test.py', 'Resnet50'),
)

DRIVER = r"""
import sys
import pytest
import gc_detection
gc_detection.register()
from object_detection.builders import model_builder
for class_map, gc_type in (
    (model_builder.FASTER_RCNN_KERAS_FEATURE_EXTRACTOR_CLASS_MAP, 'faster_rcnn_resnet50_gc'),
    (model_builder.SSD_KERAS_FEATURE_EXTRACTOR_CLASS_MAP, 'ssd_resnet50_v1_fpn_gc')):
  assert isinstance(class_map[gc_type], type), (gc_type, class_map[gc_type])
test_file, selection = sys.argv[1], sys.argv[2]
arguments = ['-q', '-p', 'no:cacheprovider', test_file]
if selection:
  arguments += ['-k', selection]
sys.exit(pytest.main(arguments))
"""


def _run_own_test(relative_path, selection):
  result = conftest.run_python(
      ['-c', DRIVER, os.path.join(OD_API_DIR, relative_path), selection or ''],
      timeout=1200)
  tail = '\n'.join((result.stdout + result.stderr).splitlines()[-30:])
  assert result.returncode == 0, f'{relative_path} failed:\n{tail}'
  assert ' passed' in result.stdout, tail


def test_od_api_model_builder_tests_pass_with_gc_detection_registered():
  _run_own_test(*OWN_TESTS[0])


def test_od_api_faster_rcnn_resnet_extractor_tests_pass_with_gc_detection_registered():
  _run_own_test(*OWN_TESTS[1])


def test_od_api_ssd_resnet_fpn_extractor_tests_pass_with_gc_detection_registered():
  _run_own_test(*OWN_TESTS[2])
