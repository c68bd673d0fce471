"""The Panoptic FPN through Model Garden's own trainer, its evaluation and export.

`python -m official.vision.train` (train_and_eval, 2 steps) of the GC far-cue
experiment on a few generated strips, then gc_detection's export command and
serving in a fresh process where gc_detection cannot be imported. References:
the panoptic-quality definition (tests/panoptic_reference.py) on the
predictions of the checkpoint restored here, the Keras model restored here,
and the image itself for the parser's labels.
"""
import os
import sys

import numpy as np
import pytest
import tensorflow as tf
import yaml

from official.core import exp_factory
from official.core import task_factory
from official.vision.ops import preprocess_ops

from gc_detection.data import far_cue_panoptic
from gc_detection.data import far_cue_panoptic_dataset
from gc_detection.data import far_cue_scenes
from gc_detection.model_garden import panoptic_config
from gc_detection.model_garden import registry  # pylint: disable=unused-import
from conftest import REPO_ROOT
from conftest import run_python
from conftest import serve_without_gc_detection
from conftest import summary_scalars
import panoptic_reference

EXPERIMENT = 'panoptic_fpn_resnet50_gc_far_cue'
HEIGHT, WIDTH = far_cue_panoptic.PANOPTIC_SPEC.height, far_cue_panoptic.PANOPTIC_SPEC.width

def _overrides(data_dir):
  return {
      'task': {
          'seed': 1,
          'train_data': {'input_path': os.path.join(data_dir, 'train.tfrecord'),
                         'global_batch_size': 2, 'shuffle_buffer_size': 4},
          'validation_data': {'input_path': os.path.join(data_dir, 'val.tfrecord'),
                              'global_batch_size': 2, 'num_examples': 4},
      },
      'trainer': {'train_steps': 2, 'validation_steps': 2, 'validation_interval': 2,
                  'steps_per_loop': 2, 'summary_interval': 2, 'checkpoint_interval': 2,
                  'optimizer_config': {'warmup': {'linear': {'warmup_steps': 1}}}},
  }


def _config(data_dir):
  config = exp_factory.get_exp_config(EXPERIMENT)
  config.override(_overrides(data_dir), is_strict=True)
  return config


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  work_dir = str(tmp_path_factory.mktemp('panoptic'))
  data_dir = os.path.join(work_dir, 'data')
  far_cue_panoptic_dataset.write_dataset(data_dir, num_train=4, num_val=4,
                                         show_progress=False)
  config_file = os.path.join(work_dir, 'override.yaml')
  with open(config_file, 'w') as out:
    yaml.safe_dump(_overrides(data_dir), out)
  model_dir = os.path.join(work_dir, 'model')
  result = run_python(['-m', 'official.vision.train', f'--experiment={EXPERIMENT}',
                       '--mode=train_and_eval', f'--model_dir={model_dir}',
                       f'--config_file={config_file}'], timeout=1200)
  assert result.returncode == 0, result.stderr[-4000:]
  task = task_factory.get_task(_config(data_dir).task)
  model = task.build_model()
  tf.train.Checkpoint(model=model).read(
      tf.train.latest_checkpoint(model_dir)).expect_partial().assert_existing_objects_matched()
  return {'work_dir': work_dir, 'data_dir': data_dir, 'model_dir': model_dir,
          'config_file': config_file, 'task': task, 'model': model}


def test_training_logs_finite_mask_rcnn_and_semantic_losses(trained):
  scalars = summary_scalars(trained['model_dir'], 'train')
  for name in ('total_loss', 'semantic_loss', 'mask_loss', 'rpn_score_loss',
               'frcnn_cls_loss'):
    assert np.isfinite(scalars[name]), (name, scalars)
  assert scalars['semantic_loss'] > 0


def test_evaluation_reports_the_panoptic_quality_of_the_predictions(trained):
  logged = summary_scalars(trained['model_dir'], 'validation')
  task, model = trained['task'], trained['model']
  pairs = []
  dataset = task.build_inputs(task.task_config.validation_data)
  for images, labels in dataset.take(2):
    outputs = model(images, image_shape=labels['image_info'][:, 1, :],
                    anchor_boxes=labels['anchor_boxes'], training=False)
    truth = labels['panoptic_groundtruths']
    for index in range(images.shape[0]):
      pairs.append(((truth['category_mask'][index].numpy(),
                     truth['instance_mask'][index].numpy()),
                    (outputs['category_mask'][index].numpy(),
                     outputs['instance_mask'][index].numpy())))
  assert len(pairs) == 4
  expected = panoptic_reference.scores(
      pairs, panoptic_config.is_thing(task.task_config.model))
  for name, value in expected.items():
    assert logged[name] == pytest.approx(value, abs=1e-5), (name, logged)
  assert 'AP' in logged and 'mask_AP' in logged  # the stock COCO box and mask metrics


def test_the_task_scores_ground_truth_as_perfect_and_damage_as_the_definition_does(
    trained):
  config = _config(trained['data_dir'])
  config.task.use_coco_metrics = False
  task = task_factory.get_task(config.task)
  task.build_metrics(training=False)
  rng = np.random.default_rng(0)
  for damage in (False, True):
    state, pairs = None, []
    for images, labels in task.build_inputs(config.task.validation_data).take(2):
      outputs = dict(trained['model'](images, image_shape=labels['image_info'][:, 1, :],
                                      anchor_boxes=labels['anchor_boxes'], training=False))
      truth = labels['panoptic_groundtruths']
      category = truth['category_mask'].numpy().copy()
      instance = truth['instance_mask'].numpy().copy()
      if damage:  # a wrong stuff block and a moved instance in each image
        for index in range(len(category)):
          y, x = rng.integers(0, 40), rng.integers(0, 400)
          category[index, y:y + 24, x:x + 100] = rng.integers(4, 11)
          instance[index, y:y + 24, x:x + 100] = 0
          instance[index] = np.roll(instance[index], 6, axis=1)
          category[index][instance[index] > 0] = category[index][instance[index] > 0].max()
      outputs['category_mask'] = tf.constant(category)
      outputs['instance_mask'] = tf.constant(instance)
      logs = {}
      task._update_metrics(labels, outputs, logs)  # what validation_step hands on
      state = task.aggregate_logs(state, logs)
      pairs += [((truth['category_mask'][i].numpy(), truth['instance_mask'][i].numpy()),
                 (category[i], instance[i])) for i in range(len(category))]
    scores = task.reduce_aggregated_logs(state)
    expected = panoptic_reference.scores(pairs, panoptic_config.is_thing(config.task.model))
    if not damage:
      assert scores['PQ'] == pytest.approx(1.0) and expected['PQ'] == pytest.approx(1.0)
    else:
      assert 0.2 < expected['PQ'] < 0.95
    for name, value in expected.items():
      assert scores[name] == pytest.approx(value, abs=1e-6), name


def test_the_exported_model_serves_panoptic_masks_without_gc_detection(trained):
  export_dir = os.path.join(trained['work_dir'], 'export')
  command = ['-m', 'gc_detection.cli.export_panoptic', f'--experiment={EXPERIMENT}',
             f'--config_file={trained["config_file"]}',
             f'--checkpoint_path={trained["model_dir"]}', f'--export_dir={export_dir}',
             f'--input_image_size={HEIGHT},{WIDTH}', '--batch_size=1']
  result = run_python(command, timeout=900)
  assert result.returncode == 0, result.stderr[-4000:]
  again = run_python(command, timeout=300)
  assert again.returncode == 2 and '--export_dir:' in again.stderr, again.stderr[-2000:]

  strip = next(far_cue_panoptic.generate(7, 1))
  outputs = serve_without_gc_detection(os.path.join(export_dir, 'saved_model'),
                                       strip.image[None], trained['work_dir'])

  model = trained['model']
  normalised = preprocess_ops.normalize_image(tf.constant(strip.image))[None]
  expected = model(normalised, image_shape=tf.constant([[HEIGHT, WIDTH]], tf.float32),
                   training=False)
  np.testing.assert_array_equal(outputs['category_mask'], expected['category_mask'].numpy())
  np.testing.assert_array_equal(outputs['instance_mask'], expected['instance_mask'].numpy())
  np.testing.assert_allclose(outputs['detection_scores'],
                             expected['detection_scores'].numpy(), atol=1e-4)
  assert outputs['category_mask'].shape == (1, HEIGHT, WIDTH)


def test_the_parser_flips_and_scales_the_semantic_labels_with_the_image(tmp_path):
  data_dir = str(tmp_path)
  far_cue_panoptic_dataset.write_dataset(data_dir, num_train=2, num_val=1,
                                         show_progress=False)
  config = _config(data_dir)
  parser = config.task.train_data.parser
  parser.aug_rand_hflip, parser.aug_rand_vflip = True, True
  parser.aug_scale_min, parser.aug_scale_max = 0.75, 1.25
  config.task.train_data.global_batch_size = 1
  task = task_factory.get_task(config.task)
  tf.random.set_seed(0)
  yellow = np.array(far_cue_scenes.OBJECT_COLOUR, np.float32)
  ground = np.array(far_cue_panoptic.GROUND_COLOUR, np.float32)
  stuff_of = {name: index - far_cue_panoptic.NUM_THING_CLASSES
              for index, name in enumerate(far_cue_panoptic.CATEGORY_NAMES)}
  band_sides = set()
  for images, labels in task.build_inputs(config.task.train_data).take(6):
    pixels = (images[0].numpy() * preprocess_ops.STDDEV_RGB
              + preprocess_ops.MEAN_RGB)
    semantic = labels['gt_segmentation_mask'][0, :, :, 0].numpy()
    disks = semantic == 0
    assert disks.any()
    near_yellow = np.abs(pixels[disks] - yellow).max(axis=-1) < 40
    assert near_yellow.mean() > 0.75, near_yellow.mean()
    grounds = np.isin(semantic, [stuff_of[name] for name in far_cue_panoptic.GROUND_NAMES])
    near_brown = np.abs(pixels[grounds] - ground).max(axis=-1) < 40
    assert near_brown.mean() > 0.75, near_brown.mean()
    valid = labels['image_info'][0, 1].numpy().astype(int)
    assert (semantic[valid[0]:, :] == config.task.losses.semantic_ignore_label).all()
    bands = np.isin(semantic, [stuff_of[name] for name in ('sky', 'table', 'street')])
    if bands.any():
      band_sides.add(bool(np.nonzero(bands)[1].mean() < valid[1] / 2))
  assert band_sides == {True, False}  # flipped and unflipped strips both seen


def test_the_benchmark_pictures_show_image_truth_and_both_predictions(trained):
  sys.path.insert(0, os.path.join(REPO_ROOT, 'benchmarks'))
  import far_cue_panoptic_pictures  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  strips = list(far_cue_panoptic.generate(5, 2))
  path = os.path.join(trained['work_dir'], 'pictures.png')
  model_dirs = {'stock': trained['model_dir'], 'gc': trained['model_dir']}
  far_cue_panoptic_pictures.draw({'stock': EXPERIMENT, 'gc': EXPERIMENT}, model_dirs,
                                 strips, path)
  picture = np.asarray(Image.open(path))
  assert picture.shape[1] == WIDTH and picture.shape[0] >= 8 * HEIGHT
  np.testing.assert_array_equal(picture[:HEIGHT], strips[0].image)
  truth = far_cue_panoptic_pictures.coloured(strips[0].category_mask,
                                             strips[0].instance_mask)
  np.testing.assert_array_equal(picture[HEIGHT + 2:2 * HEIGHT + 2], truth)
