"""The user's path with the OD API's own tools, in subprocesses.

For Faster R-CNN + GC and RetinaNet + GC: `python -m
object_detection.model_main_tf2` trains the shipped R-50 GC config (8 heads,
2 layers: not the defaults) on a generated TFRecord; `python -m
object_detection.exporter_main_v2` exports it; a fresh process that does not
import gc_detection serves the SavedModel, and its detections are compared with
the model rebuilt in this process from the same checkpoint.
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
from object_detection.builders import model_builder
from object_detection.utils import config_util
import pytest
import tensorflow as tf

from conftest import REPO_ROOT
import stock_trainer
from gc_detection.data import shapes
from gc_detection import atomic_files
from gc_detection.data import tf_example

# meta architecture -> (shipped GC config, input size, C of the refined map,
# training steps). Faster R-CNN trains the stock loop's 100 steps (after 10
# its boxes all fall outside the image: nothing to compare); RetinaNet 10, in
# one iteration of the loop (tests/stock_trainer.py).
CASES = {
    'faster_rcnn': ('faster_rcnn_resnet50_v1_gc_600x1024_coco.config', 64, 1024, 100),
    'retinanet': ('ssd_resnet50_v1_fpn_gc_640x640_coco.config', 160, 2048, 10),
}


def _run(args, env=None, timeout=1500):
  result = subprocess.run([sys.executable] + args, capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=timeout,
                          env=dict(os.environ, **(env or {})))
  assert result.returncode == 0, (
      f'{" ".join(args)} failed:\n{result.stderr[-4000:]}')
  return result


def _shrink_faster_rcnn(configs, size):
  frcnn = configs['model'].faster_rcnn
  resizer = frcnn.image_resizer.keep_aspect_ratio_resizer
  resizer.min_dimension = resizer.max_dimension = size
  frcnn.first_stage_max_proposals = 32
  # Anchors for 64 px images (the shipped 256 px base clips every anchor to
  # nearly the whole image, so the second stage may see no positive box and
  # its random boxes may all fall outside the image: no detection).
  anchors = frcnn.first_stage_anchor_generator.grid_anchor_generator
  anchors.height = anchors.width = 32
  frcnn.second_stage_batch_size = 32
  post = frcnn.second_stage_post_processing.batch_non_max_suppression
  post.max_total_detections = post.max_detections_per_class = 20
  schedule = configs['train_config'].optimizer.adam_optimizer.learning_rate
  schedule.cosine_decay_learning_rate.total_steps = 200
  schedule.cosine_decay_learning_rate.warmup_steps = 10


def _shrink_retinanet(configs, size):
  ssd = configs['model'].ssd
  ssd.image_resizer.fixed_shape_resizer.height = size
  ssd.image_resizer.fixed_shape_resizer.width = size
  post = ssd.post_processing.batch_non_max_suppression
  post.max_total_detections = post.max_detections_per_class = 20
  schedule = configs['train_config'].optimizer.momentum_optimizer.learning_rate
  cosine = schedule.cosine_decay_learning_rate
  cosine.learning_rate_base, cosine.warmup_learning_rate = 1e-3, 1e-4
  cosine.total_steps, cosine.warmup_steps = 200, 10


def _write_tiny_gc_config(work_dir, meta_architecture):
  """A shipped GC config, pointed at generated data and made tiny."""
  config_name, size, _, _ = CASES[meta_architecture]
  record = os.path.join(work_dir, 'train.tfrecord')
  label_map = os.path.join(work_dir, 'label_map.pbtxt')
  tf_example.write_tfrecord(record, shapes.generate(
      seed=3, count=8, height=size, width=size, max_boxes=2))
  atomic_files.write_text(
      label_map, tf_example.label_map_text(shapes.SHAPE_COLOURS))
  text = open(os.path.join(REPO_ROOT, 'pipeline_configs', config_name)).read()
  text = text.replace('num_heads: 4', 'num_heads: 8').replace(
      'num_layers: 1', 'num_layers: 2').replace(
          'initialization: BOTTLENECK', 'initialization: GLOROT')
  text = text.replace('PATH_TO_BE_CONFIGURED/train2017-?????-of-00100.tfrecord',
                      record)
  text = text.replace('PATH_TO_BE_CONFIGURED/label_map.pbtxt', label_map)
  path = os.path.join(work_dir, 'pipeline.config')
  with open(path, 'w') as out:
    out.write(text)
  configs = config_util.get_configs_from_pipeline_file(path)
  configs = config_util.merge_external_params_with_configs(configs, kwargs_dict={
      'batch_size': 2, 'num_classes': len(shapes.SHAPE_COLOURS)})
  {'faster_rcnn': _shrink_faster_rcnn,
   'retinanet': _shrink_retinanet}[meta_architecture](configs, size)
  train_config = configs['train_config']
  train_config.ClearField('fine_tune_checkpoint')
  train_config.ClearField('data_augmentation_options')
  configs['eval_input_configs'][0].tf_record_input_reader.input_path[:] = [record]
  config_util.save_pipeline_config(
      config_util.create_pipeline_proto_from_configs(configs), work_dir)
  return path


@pytest.fixture(scope='module', params=sorted(CASES))
def trained(request, tmp_path_factory):
  """(meta architecture, work_dir, model_dir) after the case's steps of the
  stock trainer."""
  work_dir = str(tmp_path_factory.mktemp(f'stock_trainer_{request.param}'))
  config = _write_tiny_gc_config(work_dir, request.param)
  model_dir = os.path.join(work_dir, 'model')
  steps = CASES[request.param][3]
  _run(stock_trainer.arguments(config, model_dir, f'--num_train_steps={steps}',
                               f'--checkpoint_every_n={steps}',
                               steps_per_iteration=steps),
       env={'GC_DETECTION_SEED': '1'})
  return request.param, work_dir, model_dir


def test_the_stock_trainer_writes_the_configured_gc_variables(trained):
  meta_architecture, _, model_dir = trained
  channels = CASES[meta_architecture][2]
  head = channels // 4 // 8
  checkpoint = tf.train.latest_checkpoint(model_dir)
  assert checkpoint is not None
  reader = tf.train.load_checkpoint(checkpoint)
  assert reader.get_tensor('step/.ATTRIBUTES/VARIABLE_VALUE') == CASES[meta_architecture][3]
  # Keys look like model/<proposal model>/layer_with_weights-N/block_0.Sqkv_kernel/
  # .ATTRIBUTES/VARIABLE_VALUE ('.S' escapes the '/' of the weight name).
  gc_keys = {match.group(1) + '/' + match.group(2): key
             for key in reader.get_variable_to_shape_map()
             for match in [re.fullmatch(
                 r'model/.*/(block_\d+)\.S(\w+)/\.ATTRIBUTES/VARIABLE_VALUE', key)]
             if match}
  gc_shapes = {name: tuple(reader.get_variable_to_shape_map()[key])
               for name, key in gc_keys.items()}
  # 2 layers x 8 heads of C / 4 / 8 channels: the config's settings.
  assert gc_shapes == {
      f'block_{i}/{name}': shape for i in range(2) for name, shape in (
          ('qkv_kernel', (channels, 3, 8, head)), ('qkv_bias', (3, 8, head)),
          ('output_kernel', (8, head, channels)), ('output_bias', (channels,)))}
  for key in gc_keys.values():
    assert np.all(np.isfinite(reader.get_tensor(key)))


_SERVE_IN_FRESH_PROCESS = r'''
import json, sys
import numpy as np
import tensorflow as tf
detect = tf.saved_model.load(sys.argv[1]).signatures['serving_default']
image = np.load(sys.argv[2])
out = {k: v.numpy().tolist() for k, v in detect(input_tensor=tf.constant(image)).items()}
out['gc_detection_imported'] = any(m.startswith('gc_detection') for m in sys.modules)
json.dump(out, open(sys.argv[3], 'w'))
'''


def test_the_stock_exporter_output_matches_the_in_process_model(trained):
  meta_architecture, work_dir, model_dir = trained
  size = CASES[meta_architecture][1]
  exported = os.path.join(work_dir, 'exported')
  _run(['-m', 'object_detection.exporter_main_v2', '--input_type=image_tensor',
        f'--pipeline_config_path={os.path.join(work_dir, "pipeline.config")}',
        f'--trained_checkpoint_dir={model_dir}', f'--output_directory={exported}'])
  assert '[gc_detection.protos.global_context]' in open(
      os.path.join(exported, 'pipeline.config')).read()

  image = shapes.generate(seed=11, count=1, height=size, width=size)[0].image[None]
  image_path = os.path.join(work_dir, 'image.npy')
  np.save(image_path, image)
  served_path = os.path.join(work_dir, 'served.json')
  _run(['-c', _SERVE_IN_FRESH_PROCESS, os.path.join(exported, 'saved_model'),
        image_path, served_path], env={'GC_DETECTION_AUTOREGISTER': '0'})
  served = json.load(open(served_path))
  assert served['gc_detection_imported'] is False

  configs = config_util.get_configs_from_pipeline_file(
      os.path.join(exported, 'pipeline.config'))
  model = model_builder.build(configs['model'], is_training=False)
  preprocessed, true_shapes = model.preprocess(tf.cast(image, tf.float32))
  model.predict(preprocessed, true_shapes)  # creates the variables
  tf.train.Checkpoint(model=model).restore(
      tf.train.latest_checkpoint(model_dir)).expect_partial().assert_existing_objects_matched()
  assert model._feature_extractor.global_context.num_heads == 8  # pylint: disable=protected-access
  local = model.postprocess(model.predict(preprocessed, true_shapes), true_shapes)

  count = int(local['num_detections'][0])
  assert count == int(served['num_detections'][0]) and count > 0
  np.testing.assert_allclose(np.array(served['detection_scores'])[0, :count],
                             local['detection_scores'].numpy()[0, :count], atol=1e-4)
  np.testing.assert_allclose(np.array(served['detection_boxes'])[0, :count],
                             local['detection_boxes'].numpy()[0, :count], atol=1e-4)
  # The exporter reports 1-based class ids.
  np.testing.assert_array_equal(np.array(served['detection_classes'])[0, :count],
                                local['detection_classes'].numpy()[0, :count] + 1)


def test_train_and_export_scripts_explain_missing_arguments():
  for script, missing in (('train.sh', '--pipeline_config_path --model_dir'),
                          ('export.sh', '--pipeline_config_path '
                                        '--trained_checkpoint_dir --output_directory')):
    result = subprocess.run(['bash', os.path.join(REPO_ROOT, 'scripts', script)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert f'missing {missing}' in result.stderr
    assert 'usage: scripts/' in result.stderr
  result = subprocess.run(
      ['bash', os.path.join(REPO_ROOT, 'scripts', 'train.sh'), '--model_dir=/tmp/x',
       f'--pipeline_config_path={os.path.join(REPO_ROOT, "pipeline_configs", CASES["retinanet"][0])}'],
      capture_output=True, text=True)
  assert result.returncode == 2 and 'PATH_TO_BE_CONFIGURED' in result.stderr
