"""The attention-map tool (gc_detection.cli.attention_maps) on tiny GC models.

A tiny Faster R-CNN R-50 + GC (128 px, random GLOROT weights) is built from
the shipped config, checkpointed, and restored by the tool. The tool's raw
weights are checked against an independent NumPy float64 attention, against a
constructed case whose answer is known from the image (the peak moves with a
patch), and the pictures, arrays, summaries and errors are checked. One
tiny RetinaNet (160 px) checks the C5 path.
"""
import glob
import os

import numpy as np
from object_detection.utils import config_util
from PIL import Image
import pytest
import tensorflow as tf

import attention_reference
from conftest import REPO_ROOT
from conftest import run_python
from gc_detection.attention_maps import files as attention_files
from gc_detection.od_api import attention_model
from gc_detection.attention_maps import pictures as attention_pictures
from gc_detection.od_api import attention_weights
from gc_detection.od_api.attention_model import AttentionMapError
from gc_detection.data import shapes
import tiny_configs

RETINANET_GC_R50 = 'ssd_resnet50_v1_fpn_gc_640x640_coco.config'
SIZE = 128  # keep-aspect resize to 128 (long side), padded to 128 x 128
STRIDE = 16
GRID = SIZE // STRIDE  # 8 x 8 feature cells
GRAY = 128
RED = (230, 40, 40)
# Random Glorot Q/K give logits with a spread of ~2000 on these features (one-hot
# attention); the fixture scales Q down so the maps are soft and informative.
QUERY_KERNEL_SCALE = 7e-4
RETINANET_QUERY_KERNEL_SCALE = 2e-3


def _write_tiny_pipeline(directory, config_name, size, block):
  """A shipped config at `size` px, written to directory/pipeline.config."""
  configs = tiny_configs.configs(config_name, size, directory, block)
  meta_architecture = configs['model'].WhichOneof('model')
  if meta_architecture == 'faster_rcnn':
    frcnn = configs['model'].faster_rcnn
    frcnn.first_stage_max_proposals, frcnn.initial_crop_size = 8, 6
  config_util.save_pipeline_config(
      config_util.create_pipeline_proto_from_configs(configs), str(directory))
  return str(directory / 'pipeline.config')


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
  """(pipeline.config path, checkpoint directory) of a tiny GC Faster R-CNN."""
  directory = tmp_path_factory.mktemp('tiny_frcnn_gc')
  # Seeded: the constructed cases below hold for most random backbones, not all.
  tf.keras.utils.set_random_seed(int(os.environ.get('ATTENTION_TEST_SEED', '3')))
  config = _write_tiny_pipeline(directory, tiny_configs.FRCNN_GC_R50, SIZE,
                                'initialization: GLOROT')
  model = tiny_configs.built_model(config_util.get_configs_from_pipeline_file(config),
                                   SIZE)
  qkv = model._feature_extractor.global_context.layer_weights(0)['qkv_kernel']
  qkv.assign(qkv.numpy() * np.array([QUERY_KERNEL_SCALE, 1, 1])[None, :, None, None])
  # Random box heads throw boxes off the image (dropped by the clip) and
  # random class heads give scores that underflow to 0 (dropped by the
  # threshold): zeroed, every box is an anchor and every class score 1/91.
  for variable in model.variables:
    if ('BoxEncodingPredictor' in variable.name or
        'mask_rcnn_class_head/ClassPredictor' in variable.name):
      variable.assign(tf.zeros_like(variable))
  tf.train.Checkpoint(model=model).save(str(directory / 'train' / 'ckpt'))
  return config, str(directory / 'train')


@pytest.fixture(scope='module')
def loaded(tiny):
  return attention_model.load_model(*tiny)


def _shapes_image(height, width, seed=5):
  return shapes.generate(seed=seed, count=1, height=height, width=width,
                         max_boxes=3)[0].image


def _layer_input_in_the_detector(loaded, image):
  """The (1, Hf, Wf, C) map the detector's own predict() feeds the GC layer."""
  seen = []
  call = loaded.layer.call

  def recording_call(inputs, *args, **kwargs):
    seen.append(inputs)
    return call(inputs, *args, **kwargs)

  loaded.layer.call = recording_call
  try:
    loaded.model.predict(*loaded.model.preprocess(tf.constant(image[None], tf.float32)))
  finally:
    del loaded.layer.call
  assert len(seen) == 1
  return seen[0].numpy()


def _reference_rows(loaded, image, cell):
  """NumPy float64 attention of `cell` over the grid: (heads, Hf, Wf).

  From the layer's kernels (tests/attention_reference.py, written from the
  paper's equations) and the map the detector itself feeds the layer.
  """
  features = _layer_input_in_the_detector(loaded, image).astype(np.float64)
  _, height, width, _ = features.shape
  _, weights = attention_reference.global_context(
      features, attention_reference.blocks_of(loaded.layer), loaded.layer.num_heads)
  row = cell[0] * width + cell[1]
  return weights[0][0, :, row, :].reshape(-1, height, width)


def _assert_valid_png(path):
  with Image.open(path) as image:
    image.verify()
  with Image.open(path) as image:
    assert image.format == 'PNG' and min(image.size) > 50


def test_weights_sum_to_one_and_match_an_independent_softmax(loaded, tmp_path):
  image = _shapes_image(SIZE, SIZE)
  point = (70.0, 37.0)  # cell (4, 2): resized == original for this image
  attention = attention_weights.compute_image_attention(loaded, image, 'shapes', [point])
  assert attention.weights.shape == (1, 4, GRID, GRID)
  assert attention.weights.dtype == np.float32
  np.testing.assert_array_equal(attention.query_cells, [[4, 2]])
  np.testing.assert_allclose(attention.weights[0].sum(axis=(1, 2)), 1.0, atol=1e-5)

  expected = _reference_rows(loaded, image, (4, 2))
  # Soft maps (several cells of every head hold weight), so the comparison
  # covers more than the position of a one-hot peak.
  assert np.all(np.sum(expected > 1e-3, axis=(1, 2)) >= 3)
  np.testing.assert_allclose(attention.weights[0], expected, rtol=2e-3, atol=1e-6)

  written = attention_files.write_image_outputs(attention, str(tmp_path),
                                                save_arrays=True)
  assert sorted(os.path.basename(p) for p in written) == [
      'shapes_attention.npz', 'shapes_grid.png', 'shapes_q00.png']
  for path in written[:-1]:
    _assert_valid_png(path)
  arrays = np.load(written[-1])
  np.testing.assert_array_equal(arrays['weights'], attention.weights)
  np.testing.assert_array_equal(arrays['query_cells'], [[4, 2]])
  assert not glob.glob(str(tmp_path / '.*tmp'))  # no temporary file left


# ------------------------------------------------------------- peak moves --


def _image_with_patches(corners, size=STRIDE):
  """Gray 128 x 128 image with identical red size x size patches at (top, left)."""
  image = np.full((SIZE, SIZE, 3), GRAY, np.uint8)
  for top, left in corners:
    image[top:top + size, left:left + size] = RED
  return image


def _features(loaded, image):
  preprocessed, _ = attention_weights.preprocess(loaded, image)
  return attention_weights.module_input(loaded, preprocessed).numpy()[0]


def _similarity_attention(loaded, heads=4, head_channels=64, self_logit=16.0):
  """Q = K = a scaled projection onto channels that detect a red patch.

  Calibrated on other images (gray; one patch at cell (4, 4)), not on the test
  images: the 256 channels whose response to the patch most exceeds their
  largest response anywhere on plain gray, 64 per head. With these kernels the
  logit of two cells is proportional to their features' dot product on those
  channels: ~0 for gray, large between two patch cells. Each head is scaled so
  that the calibration patch cell's logit with itself is `self_logit`.

  Returns the (C, 3, heads, d) qkv kernel (V keeps its weights).
  """
  gray = _features(loaded, _image_with_patches([]))
  patch = _features(loaded, _image_with_patches([(64, 64)]))[4, 4]
  response = patch - gray.reshape(-1, gray.shape[-1]).max(axis=0)
  channels = np.argsort(-response)[:heads * head_channels].reshape(heads, head_channels)
  kernel = loaded.layer.layer_weights(0)['qkv_kernel'].numpy().copy()
  kernel[:, :2] = 0
  for head in range(heads):
    scale = np.sqrt(self_logit * np.sqrt(head_channels) / np.sum(patch[channels[head]] ** 2))
    kernel[channels[head], 0, head, np.arange(head_channels)] = scale
    kernel[channels[head], 1, head, np.arange(head_channels)] = scale
  return kernel


@pytest.fixture
def similarity_module(loaded):
  """Sets the module to _similarity_attention for one test, then restores it."""
  block = loaded.layer.layer_weights(0)
  saved = {name: variable.numpy().copy() for name, variable in block.items()}
  try:
    block['qkv_kernel'].assign(_similarity_attention(loaded))
    block['qkv_bias'].assign(np.zeros(block['qkv_bias'].shape))
    yield
  finally:
    for name, value in saved.items():
      block[name].assign(value)


def test_the_attention_peak_is_on_the_twin_patch_and_moves_with_it(
    loaded, similarity_module):
  del similarity_module
  query_patch = (16, 32)  # cell (1, 2)
  query = (24.0, 40.0)  # the middle of the query patch
  previous = None
  for twin in [(96, 96), (96, 16), (16, 96)]:  # cells (6, 6), (6, 1), (1, 6)
    image = _image_with_patches([query_patch, twin])
    attention = attention_weights.compute_image_attention(loaded, image, 'twins', [query])
    weights = attention.weights[0]  # (heads, 8, 8)
    twin_cell = (twin[0] // STRIDE, twin[1] // STRIDE)
    # Every head and their mean: away from the query's own neighbourhood, the
    # peak is the twin's cell, holding a good share of the weight and at
    # least 3x any other cell there (over random inits: >= 0.3 and >= 8x).
    for head_map in list(weights) + [weights.mean(axis=0)]:
      away = head_map.copy()
      away[0:3, 1:4] = -1  # the query cell (1, 2) and its neighbours
      assert np.unravel_index(np.argmax(away), away.shape) == twin_cell
      assert head_map[twin_cell] > 0.15
      away[twin_cell] = -1
      assert head_map[twin_cell] > 3 * away.max()
    if previous is not None:
      assert weights.mean(axis=0)[previous] < 0.02  # the peak left with the patch
    previous = twin_cell
    # The weights are the query's row (over keys), of the query's cell.
    np.testing.assert_allclose(weights.sum(axis=(1, 2)), 1.0, atol=1e-5)
    np.testing.assert_array_equal(attention.query_cells, [[1, 2]])


def test_retinanet_reads_the_backbone_c5(tmp_path):
  config = _write_tiny_pipeline(tmp_path, RETINANET_GC_R50, 160,
                                'initialization: GLOROT')
  model = tiny_configs.built_model(config_util.get_configs_from_pipeline_file(config),
                                   160)
  qkv = model._feature_extractor.global_context.layer_weights(0)['qkv_kernel']
  qkv.assign(qkv.numpy() * np.array([RETINANET_QUERY_KERNEL_SCALE, 1, 1])[None, :, None, None])
  prefix = tf.train.Checkpoint(model=model).save(str(tmp_path / 'train' / 'ckpt'))
  retinanet = attention_model.load_model(config, prefix)
  assert (retinanet.meta_architecture, retinanet.stride) == ('ssd', 32)

  image = _shapes_image(120, 200)  # the fixed 160 x 160 resize squashes it
  attention = attention_weights.compute_image_attention(retinanet, image, 'retina',
                                         [(60, 100), (119, 5)])
  assert attention.feature_shape == (5, 5) and attention.true_shape == (160, 160)
  np.testing.assert_array_equal(attention.query_cells, [[2, 2], [4, 0]])
  expected = _reference_rows(retinanet, image, (2, 2))
  assert np.all(np.sum(expected > 1e-2, axis=(1, 2)) >= 3)
  np.testing.assert_allclose(attention.weights[0], expected, rtol=2e-3, atol=1e-6)


# ----------------------------------------------------------------- points --


def test_points_map_to_feature_cells_of_a_non_square_keep_aspect_image(loaded):
  image = _shapes_image(150, 200)
  preprocessed, true_shapes = attention_weights.preprocess(loaded, image)
  # Keep-aspect to 128: 150 x 200 -> 96 x 128, padded to 128 x 128.
  assert tuple(preprocessed.shape[1:3]) == (SIZE, SIZE)
  true_shape = tuple(int(v) for v in true_shapes[0, :2])
  assert true_shape == (96, 128)
  # Resized = original * 0.64; a cell is 16 resized = 25 original pixels.
  cases = {(0, 0): (0, 0), (24.9, 24.9): (0, 0), (25, 25): (1, 1),
           (140, 30): (5, 1), (10, 180): (0, 7), (149.9, 199.9): (5, 7),
           (75, 100): (3, 4)}
  for point, cell in cases.items():
    assert attention_weights.point_to_cell(point, (150, 200), true_shape, STRIDE,
                                           (GRID, GRID)) == cell

  attention = attention_weights.compute_image_attention(loaded, image, 'wide',
                                                        list(cases))
  np.testing.assert_array_equal(attention.query_cells, list(cases.values()))
  assert attention.padded_shape == (SIZE, SIZE)
  assert attention.weights.shape == (len(cases), 4, GRID, GRID)  # the full grid
  # The model ignores padding (ignore_padding's default): every query's
  # weights lie on the image's 6 x 8 cells and sum to 1 there.
  assert np.all(attention.weights[:, :, 6:, :] == 0)
  np.testing.assert_allclose(attention.weights.sum(axis=(2, 3)), 1.0, atol=1e-5)
  assert attention_pictures.visible_cells(attention) == (6, 8)
  picture = attention_pictures.display_image(attention)
  assert picture.shape == (96, 128, 3)  # the padding is cropped away
  assert attention_pictures.overlay(picture, attention.weights[0, 0],
                                    STRIDE).shape == (96, 128, 3)


# ------------------------------------------------------------- bad inputs --


def test_a_stock_config_is_refused(tiny):
  stock = os.path.join(REPO_ROOT, 'pipeline_configs', tiny_configs.FRCNN_R50)
  with pytest.raises(AttentionMapError, match='no global-context module') as error:
    attention_model.load_model(stock, tiny[1])
  assert '--pipeline_config_path' in str(error.value) and stock in str(error.value)
  with pytest.raises(AttentionMapError, match='--pipeline_config_path=.*no such'):
    attention_model.load_model('/nonexistent/pipeline.config', tiny[1])


def test_missing_checkpoints_are_refused(tiny, tmp_path):
  config, _ = tiny
  missing = str(tmp_path / 'nowhere' / 'ckpt-3')
  with pytest.raises(AttentionMapError, match='--checkpoint=.*ckpt-3.index does not'):
    attention_model.load_model(config, missing)
  with pytest.raises(AttentionMapError, match='holds no checkpoint'):
    attention_model.load_model(config, str(tmp_path))


def test_a_checkpoint_without_the_module_is_refused(tiny, tmp_path):
  prefix = tf.train.Checkpoint(step=tf.Variable(1)).save(str(tmp_path / 'ckpt'))
  with pytest.raises(AttentionMapError, match='no weights of the global-context'):
    attention_model.load_model(tiny[0], prefix)


def test_bad_points_and_images_are_refused(loaded):
  for outside in [(150, 10), (-1, 10), (10, 200)]:
    with pytest.raises(AttentionMapError, match=r'--points: .* outside the 150x200'):
      attention_weights.point_to_cell(outside, (150, 200), (96, 128), STRIDE,
                                      (GRID, GRID))
  with pytest.raises(AttentionMapError, match='outside'):
    attention_weights.compute_image_attention(loaded, _shapes_image(150, 200), 'x',
                                              [(160, 5)])
  with pytest.raises(AttentionMapError, match='--points=1,2;abc'):
    attention_weights.parse_points('1,2;abc')
  assert attention_weights.parse_points(' 1,2; 3.5,4 ;') == [(1, 2), (3.5, 4)]
  with pytest.raises(AttentionMapError, match="--images: '/nonexistent/x.png': no such file"):
    attention_files.expand_image_paths(['/nonexistent/x.png'])
  with pytest.raises(AttentionMapError, match='--layer_index=1'):
    attention_weights.attention_matrix(loaded.layer, tf.zeros([1, 2, 2, 1024]),
                                       layer_index=1)


# -------------------------------------------------------------------- CLI --


def _image_summary_tags(directory):
  tags = set()
  for path in glob.glob(os.path.join(directory, 'events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.metadata.plugin_data.plugin_name == 'images':
          tags.add(value.tag)
  return tags


def test_cli_end_to_end(tiny, tmp_path):
  config, checkpoint = tiny
  image_path = tmp_path / 'street.png'
  Image.fromarray(_shapes_image(150, 200, seed=7)).save(image_path)
  out, board = tmp_path / 'maps', tmp_path / 'board'
  result = run_python(['-m', 'gc_detection.cli.attention_maps',
                       f'--pipeline_config_path={config}', f'--checkpoint={checkpoint}',
                       f'--images={image_path}', f'--output_dir={out}',
                       '--points=40,60', '--top_detections=2',
                       f'--tensorboard_dir={board}', '--save_arrays'])
  assert result.returncode == 0, result.stderr[-3000:]
  names = sorted(os.listdir(out))
  assert names == ['street_attention.npz', 'street_grid.png', 'street_q00.png',
                   'street_q01.png', 'street_q02.png'], names
  for name in names[1:]:
    _assert_valid_png(out / name)
  arrays = np.load(out / 'street_attention.npz')
  assert arrays['weights'].shape == (3, 4, GRID, GRID)
  np.testing.assert_allclose(arrays['weights'].sum(axis=(2, 3)), 1.0, atol=1e-5)
  np.testing.assert_array_equal(arrays['query_cells'][0], [1, 2])  # (40, 60) * 0.64 / 16
  assert np.isnan(arrays['query_scores'][0]) and np.all(arrays['query_scores'][1:] >= 0)
  np.testing.assert_array_equal(arrays['true_image_shape'], [96, 128])
  assert _image_summary_tags(str(board)) == {
      'street/q00', 'street/q01', 'street/q02', 'street/grid'}

  result = run_python(['-m', 'gc_detection.cli.attention_maps',
                       f'--pipeline_config_path={config}', f'--checkpoint={checkpoint}',
                       f'--images={image_path}', f'--output_dir={out}',
                       '--points=40;60'])
  assert result.returncode == 2
  assert 'attention_maps: error: --points=40;60' in result.stderr


def test_a_config_with_other_heads_than_the_checkpoint_is_named(tiny, tmp_path):
  """Before: a raw `ValueError: Received incompatible tensor with shape ...`."""
  config, checkpoint = tiny
  for block, built in (('num_heads: 2', '1 layer(s) x 2 head(s) of 128 channels'),
                       ('num_layers: 2', '2 layer(s) x 4 head(s) of 64 channels')):
    directory = tmp_path / block.split(':')[0]
    directory.mkdir()
    other = _write_tiny_pipeline(directory, tiny_configs.FRCNN_GC_R50, SIZE,
                                 f'initialization: GLOROT {block}')
    with pytest.raises(AttentionMapError) as raised:
      attention_model.load_model(other, checkpoint)
    message = str(raised.value)
    assert 'has 1 layer(s) x 4 head(s) of 64 channels (num_layers: 1, num_heads: 4, ' in (
        message)
    assert f'--pipeline_config_path builds {built}' in message


def test_cli_skips_unreadable_and_too_thin_images_and_draws_the_rest(tiny, tmp_path):
  """Before: an undecodable image aborted the run, a 1x5000 one gave a traceback."""
  config, checkpoint = tiny
  images = tmp_path / 'images'
  images.mkdir()
  Image.fromarray(_shapes_image(150, 200, seed=7)).save(images / 'a_good.png')
  (images / 'b_broken.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'\0' * 40)
  Image.fromarray(np.full((1, 5000, 3), 90, np.uint8)).save(images / 'c_thin.png')
  Image.fromarray(_shapes_image(120, 120, seed=8)).save(images / 'd_good.png')
  out = tmp_path / 'maps'
  result = run_python(['-m', 'gc_detection.cli.attention_maps',
                       f'--pipeline_config_path={config}', f'--checkpoint={checkpoint}',
                       f'--images={images}', f'--output_dir={out}', '--points=0,0'])
  assert result.returncode == 1, result.stderr[-3000:]
  assert 'Traceback' not in result.stderr
  skipped = [line for line in result.stderr.splitlines()
             if line.startswith('attention_maps: skipped ')]
  assert len(skipped) == 2, result.stderr[-3000:]
  assert skipped[0].startswith(f'attention_maps: skipped {images / "b_broken.png"}: ')
  assert skipped[1] == (
      f'attention_maps: skipped {images / "c_thin.png"}: the model failed on this '
      'image (InvalidArgumentError: output dimensions must be positive): its resizer '
      'scaled a side of the 1x5000 input to 0 pixels; the aspect ratio is too extreme '
      'for the model')
  assert sorted(os.listdir(out)) == ['a_good_grid.png', 'a_good_q00.png',
                                     'd_good_grid.png', 'd_good_q00.png']
