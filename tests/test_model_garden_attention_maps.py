"""Attention maps of a Model Garden model with the resnet_gc backbone, through the command.

The far-cue segmentation experiment is built, its module given random
weights, and checkpointed; `attention_maps --experiment=...` must then write
each query's weights, which are compared with an independent NumPy float64
attention (tests/attention_reference.py) over the stage-5 map of the stock
ResNet view with the same weights, for an input normalised and resized here
by hand.
"""
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from official.core import exp_factory
from official.core import task_factory

import attention_reference
from conftest import run_python
from gc_detection.data import far_cue_strips
from gc_detection.model_garden import registry  # pylint: disable=unused-import

EXPERIMENT = 'seg_resnet50_fpn_gc_far_cue'
MEAN = np.array([123.675, 116.28, 103.53])
STDDEV = np.array([58.395, 57.12, 57.375])


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  work_dir = tmp_path_factory.mktemp('mg_attention')
  model = task_factory.get_task(exp_factory.get_exp_config(EXPERIMENT).task).build_model()
  rng = np.random.default_rng(0)
  for weight in model.backbone.global_context.weights:
    weight.assign(rng.normal(0, 0.05, weight.shape).astype(np.float32))
  tf.train.Checkpoint(model=model).save(str(work_dir / 'model' / 'ckpt'))
  strip = next(far_cue_strips.generate(1, 1))
  image_path = str(work_dir / 'strip.png')
  Image.fromarray(strip.image).save(image_path)
  return work_dir, model, strip.image, image_path


def test_the_command_writes_the_weights_of_each_query(trained):
  work_dir, model, image, image_path = trained
  output_dir = work_dir / 'maps'
  points = [(32.0, 400.0), (10.0, 20.0)]
  result = run_python(['-m', 'gc_detection.cli.attention_maps', f'--experiment={EXPERIMENT}',
                       f'--checkpoint={work_dir / "model"}', f'--images={image_path}',
                       '--points=' + ';'.join(f'{y},{x}' for y, x in points),
                       '--save_arrays', f'--output_dir={output_dir}'])
  assert result.returncode == 0, result.stderr[-3000:]
  assert sorted(os.listdir(output_dir)) == ['strip_attention.npz', 'strip_grid.png',
                                            'strip_q00.png', 'strip_q01.png']
  arrays = np.load(output_dir / 'strip_attention.npz')
  # The strip is the experiment's input size: no resize, no padding.
  normalised = ((image - MEAN) / STDDEV).astype(np.float32)[None]
  backbone = model.backbone
  stock = backbone.stock_view()
  for stock_layer, gc_layer in zip([l for l in stock.layers if l.weights],
                                   backbone.stock_layers()):
    stock_layer.set_weights(gc_layer.get_weights())
  c5 = stock(normalised, training=False)['5'].numpy()
  _, (weights,) = attention_reference.global_context(
      c5, attention_reference.blocks_of(backbone.global_context),
      backbone.global_context.num_heads)
  height, width = c5.shape[1:3]
  assert tuple(arrays['query_cells'][0]) == (32 // 32, 400 // 32)
  for query, (row, column) in enumerate(arrays['query_cells']):
    expected = weights[0, :, row * width + column].reshape(-1, height, width)
    np.testing.assert_allclose(arrays['weights'][query], expected, atol=2e-5)
  assert int(arrays['stride']) == 32


def test_a_stock_experiment_and_top_detections_are_named(trained):
  work_dir, _, _, image_path = trained
  common = [f'--checkpoint={work_dir / "model"}', f'--images={image_path}',
            f'--output_dir={work_dir / "x"}']
  result = run_python(['-m', 'gc_detection.cli.attention_maps',
                       '--experiment=seg_resnet50_fpn_far_cue', '--points=1,1'] + common)
  assert result.returncode == 2
  assert "task.model.backbone.type is 'resnet', not resnet_gc" in result.stderr
  result = run_python(['-m', 'gc_detection.cli.attention_maps', f'--experiment={EXPERIMENT}',
                       '--pipeline_config_path=x.config', '--points=1,1'] + common)
  assert result.returncode == 2 and 'give one of --pipeline_config_path' in result.stderr
  result = run_python(['-m', 'gc_detection.cli.attention_maps', f'--experiment={EXPERIMENT}',
                       '--top_detections=2'] + common)
  assert result.returncode == 1
  assert '--top_detections: not for Model Garden models' in result.stderr
