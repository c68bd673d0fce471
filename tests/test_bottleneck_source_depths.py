"""Bottleneck initialisation of Faster R-CNN R-101 and R-152 + GC.

The module should start as a copy of a bottleneck block of the ResNet the
fine-tune checkpoint holds: by default the last block of conv4 (whose output
the module refines), else the block named by `source_block`. The source of
truth is the stock `faster_rcnn_resnet{101,152}_keras` model that wrote the
checkpoint: which conv4 blocks it has (read from its layer names) and the
block's kernels and frozen batch norms, folded in float64 NumPy
(tiny_configs.expected_bottleneck_copy), independently of gc_detection.

Each stock model is built once per module (R-152 is the slow part) at 64 px.
"""
import dataclasses
import os
import re
from typing import Dict, List, Tuple

import numpy as np
from object_detection import model_lib_v2
from object_detection.builders import model_builder
from object_detection.protos import train_pb2
from object_detection.utils import config_util
import pytest
import tensorflow as tf

from conftest import REPO_ROOT
from gc_detection.od_api.config_edits import set_square_input
import tiny_configs

SIZE = 64
C4_CHANNELS = 1024
STOCK_R101 = 'faster_rcnn_resnet101_v1_600x1024_coco.config'
# depth -> (stock extractor type, shipped GC config).
DEPTHS = {
    101: ('faster_rcnn_resnet101_keras', 'faster_rcnn_resnet101_v1_gc_600x1024_coco.config'),
    152: ('faster_rcnn_resnet152_keras', 'faster_rcnn_resnet152_v1_gc_600x1024_coco.config'),
}
# A source block other than the default, per depth.
OTHER_BLOCKS = {101: 'conv4_block5'}


@dataclasses.dataclass(frozen=True)
class StockCheckpoint:
  """A stock detection checkpoint and what its ResNet says about conv4.

  Attributes:
    path: the checkpoint prefix (tf.train.Checkpoint(model=...)).
    blocks: every conv4 block of the stock ResNet whose reduce convolution reads
      C4_CHANNELS channels (every block but the stage's first), in order.
    expected: block -> expected_bottleneck_copy(fold=True) of the randomised
      blocks: reduce kernel (C, C/4), reduce bias (C/4,), expand kernel
      (C/4, C), expand bias (C,), float64.
  """
  path: str
  blocks: List[str]
  expected: Dict[str, Tuple[np.ndarray, ...]]


def _conv4_blocks(backbone):
  """conv4 blocks of a Keras ResNet whose reduce conv maps C4 -> C4 / 4."""
  found = []
  for layer in backbone.layers:
    match = re.fullmatch(r'conv4_block(\d+)_1_conv', layer.name)
    if match and layer.kernel.shape[2] == C4_CHANNELS:
      found.append((int(match.group(1)), layer.name[:-len('_1_conv')]))
  return [name for _, name in sorted(found)]


def _stock_configs(depth, work_dir):
  """The shipped stock R-101 config, with the extractor of `depth`, at SIZE px."""
  text = open(os.path.join(REPO_ROOT, 'pipeline_configs', STOCK_R101)).read()
  text = text.replace("type: 'faster_rcnn_resnet101_keras'",
                      f"type: '{DEPTHS[depth][0]}'")
  path = os.path.join(work_dir, f'stock_r{depth}.config')
  with open(path, 'w') as out:
    out.write(text)
  configs = config_util.get_configs_from_pipeline_file(path)
  assert configs['model'].faster_rcnn.feature_extractor.type == DEPTHS[depth][0]
  set_square_input(configs['model'], SIZE)
  return configs


def _stock_checkpoint(depth, tmp_path_factory):
  """Builds the stock model of `depth`, randomises its source blocks, saves it."""
  work_dir = tmp_path_factory.mktemp(f'stock_r{depth}')
  stock = tiny_configs.built_model(_stock_configs(depth, str(work_dir)), SIZE)
  backbone = stock._feature_extractor.classification_backbone  # pylint: disable=protected-access
  blocks = _conv4_blocks(backbone)
  sources = [blocks[-1]] + ([OTHER_BLOCKS[depth]] if depth in OTHER_BLOCKS else [])
  for seed, block in enumerate(sources):
    tiny_configs.randomise_bottleneck_block(backbone, block, seed=depth + seed)
  path = tf.train.Checkpoint(model=stock).save(str(work_dir / 'detection' / 'ckpt'))
  return StockCheckpoint(
      path=path, blocks=blocks,
      expected={block: tiny_configs.expected_bottleneck_copy(backbone, block, fold=True)
                for block in sources})


@pytest.fixture(scope='module')
def stock_r101(tmp_path_factory):
  return _stock_checkpoint(101, tmp_path_factory)


@pytest.fixture(scope='module')
def stock_r152(tmp_path_factory):
  return _stock_checkpoint(152, tmp_path_factory)


def _module_weights(layer):
  """Per attention block, {qkv_kernel (C, 3, h, d), qkv_bias (3, h, d),
  output_kernel (h, d, C), output_bias (C,)} as NumPy."""
  return [{name: variable.numpy() for name, variable in layer.layer_weights(index).items()}
          for index in range(layer.num_layers)]


def _fine_tune(model, path):
  """The stock trainer's fine-tune restore of a detection checkpoint."""
  model_lib_v2.load_fine_tune_checkpoint(
      model, path, 'detection', train_pb2.CheckpointVersion.V2,
      run_model_on_dummy_input=False, input_dataset=None,
      unpad_groundtruth_tensors=False)


def _restore_and_check(depth, checkpoint, block_text, source, tmp_path):
  """Builds the GC model of `depth`, fine-tune restores `checkpoint` into it,
  and compares the module with the stock block `source`."""
  gc_configs = tiny_configs.configs(DEPTHS[depth][1], SIZE, tmp_path, block_text)
  gc_model = tiny_configs.built_model(gc_configs, SIZE)
  extractor = gc_model._feature_extractor  # pylint: disable=protected-access
  layer = extractor.global_context
  assert extractor.source_block == source, (
      f'R-{depth}: the extractor copies {extractor.source_block}, expected {source}')
  expected = checkpoint.expected[source]
  with pytest.raises(AssertionError):
    # Glorot before the restore: the comparison can fail.
    tiny_configs.assert_bottleneck_copy(_module_weights(layer), expected)
  _fine_tune(gc_model, checkpoint.path)
  weights = _module_weights(layer)
  assert len(weights) == layer.num_layers
  try:
    tiny_configs.assert_bottleneck_copy(weights, expected)
  except AssertionError as error:
    raise AssertionError(f'R-{depth}: the module is not the folded copy of '
                         f'{source} after the fine-tune restore:\n{error}') from None


@pytest.mark.parametrize('depth', sorted(DEPTHS))
def test_by_default_the_module_is_the_last_conv4_block(depth, request, tmp_path):
  checkpoint = request.getfixturevalue(f'stock_r{depth}')
  # The shipped GC config's block: BOTTLENECK, no source_block, fold_batch_norm.
  _restore_and_check(depth, checkpoint, None, checkpoint.blocks[-1], tmp_path)


@pytest.mark.parametrize('depth', sorted(OTHER_BLOCKS))
def test_a_named_source_block_is_copied_into_every_layer(depth, request, tmp_path):
  checkpoint = request.getfixturevalue(f'stock_r{depth}')
  source = OTHER_BLOCKS[depth]
  assert source in checkpoint.blocks and source != checkpoint.blocks[-1]
  _restore_and_check(depth, checkpoint, 'initialization: BOTTLENECK num_layers: 2 '
                     f'source_block: "{source}"', source, tmp_path)


@pytest.mark.parametrize('depth, block', [
    (101, 'conv4_block24'), (152, 'conv4_block37'), (101, 'conv4_block1'),
    (152, 'conv3_block8')],
                         ids=['r101-past-the-end', 'r152-past-the-end',
                              'r101-first-block', 'r152-other-stage'])
def test_a_source_block_that_cannot_be_copied_is_refused(depth, block, request,
                                                         tmp_path):
  checkpoint = request.getfixturevalue(f'stock_r{depth}')
  assert block not in checkpoint.blocks
  gc_configs = tiny_configs.configs(
      DEPTHS[depth][1], SIZE, tmp_path,
      f'initialization: BOTTLENECK source_block: "{block}"')
  with pytest.raises(ValueError) as error:
    model_builder.build(gc_configs['model'], is_training=False)
  message = str(error.value)
  first, last = checkpoint.blocks[0], checkpoint.blocks[-1]
  for part in ('source_block', block, first, last):
    assert re.search(rf'\b{part}\b', message), (
        f'{part!r} missing from the error: {message}')
  assert re.search(rf'\b{first}\b.*\b{last}\b', message), (
      f'the valid range {first} .. {last} is not named: {message}')
