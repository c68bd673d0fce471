"""Parsing and building many pipelines in one process keeps no growing state.

Issue 18: settings used to travel through dicts keyed by id() of protobuf
messages that were never emptied. Here 200 pipelines, each with its own
num_heads, are parsed through config_util and built through model_builder in
one process: every model must get its own pipeline's settings, the binding
state must stay at most RECENTLY_BOUND entries, and no container held by a
gc_detection module may grow with the number of pipelines.
"""
import sys

from object_detection.builders import model_builder
from object_detection.utils import config_util

import conftest  # pylint: disable=unused-import
from gc_detection.od_api import model_builder_hooks
from gc_detection.od_api import pipeline_binding
import tiny_configs

PIPELINES = 200
SSD_GC = 'ssd_resnet50_v1_fpn_gc_640x640_coco.config'


def _module_container_sizes():
  """{(module, attribute): len} of every sized module-level object of gc_detection."""
  sizes = {}
  for name, module in list(sys.modules.items()):
    if not name.startswith('gc_detection') or module is None:
      continue
    for attribute, value in vars(module).items():
      if isinstance(value, (dict, list, set, tuple)) and not attribute.startswith('__'):
        sizes[(name, attribute)] = len(value)
  return sizes


def _pipeline_file(tmp_path, index, num_heads):
  text = open(f'{tiny_configs.CONFIG_DIR}/{SSD_GC}').read()
  start = text.index('[gc_detection.protos.global_context]')
  text = text[:start] + (
      '[gc_detection.protos.global_context] { num_heads: %d }\n' % num_heads)
  path = tmp_path / f'{index}.config'
  path.write_text(text)
  return str(path)


def test_200_pipelines_build_their_own_settings_and_state_stays_bounded(tmp_path):
  heads_cycle = (1, 2, 4, 8)

  def parse_and_build(index):
    num_heads = heads_cycle[index % len(heads_cycle)]
    configs = config_util.get_configs_from_pipeline_file(
        _pipeline_file(tmp_path, index, num_heads))
    model = model_builder.build(configs['model'], is_training=False)
    extractor = model_builder_hooks.gc_extractor_of(model)
    assert extractor.gc_settings.num_heads == num_heads, index
    return pipeline_binding.bound_state_sizes()

  for index in range(10):  # first imports, caches filled once
    parse_and_build(index)
  before = _module_container_sizes()
  largest = {}
  for index in range(10, PIPELINES):
    for structure, size in parse_and_build(index).items():
      largest[structure] = max(size, largest.get(structure, 0))
  after = _module_container_sizes()

  assert largest['recent'] <= pipeline_binding.RECENTLY_BOUND
  assert largest['scopes'] == 0
  grown = {key: (before.get(key, 0), size) for key, size in after.items()
           if size > before.get(key, 0)}
  assert not grown, f'module containers grew over {PIPELINES - 10} pipelines: {grown}'
