"""Mask R-CNN R-50 + GC through the OD API's own tools, in subprocesses.

The shipped Mask R-CNN GC config, shrunk to 64 px and a few proposals, reads a
generated TFRecord with PNG instance masks (`load_instance_masks: true`,
`mask_type: PNG_MASKS`). `python -m object_detection.model_main_tf2` trains it
(one block of 100 steps) and, with `--checkpoint_dir`, evaluates the
checkpoint once with the COCO box and mask metrics; `python -m
object_detection.exporter_main_v2` exports it. A fresh process that does not
import gc_detection serves the SavedModel; its boxes, scores, classes and masks
are compared with the model rebuilt in this process from the same checkpoint
with the OD API's model_builder.
"""
import dataclasses
import json
import os
import re
import subprocess
import sys

import numpy as np
from object_detection.builders import model_builder
from object_detection.core import standard_fields as fields
from object_detection.data_decoders import tf_example_decoder
from object_detection.protos import input_reader_pb2
from object_detection.utils import config_util
import pytest
import tensorflow as tf

from conftest import REPO_ROOT
from gc_detection import atomic_files
from gc_detection.data import shapes
from gc_detection.data import tf_example

CONFIG = os.path.join(REPO_ROOT, 'pipeline_configs',
                      'mask_rcnn_resnet50_v1_gc_600x1024_coco.config')
SIZE = 64
MASK_SIZE = 8
MAX_DETECTIONS = 10
C4_CHANNELS = 1024  # ResNet-50's conv4 output, which the module refines
STEPS = 100  # the stock trainer's minimum (NUM_STEPS_PER_ITERATION)


def _run(args, env=None, timeout=900):
  result = subprocess.run([sys.executable] + args, capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=timeout,
                          env=dict(os.environ, **(env or {})))
  assert result.returncode == 0, (
      f'{" ".join(args)} failed:\n{result.stderr[-4000:]}')
  return result


def _with_masks(examples):
  """The shapes examples with one instance mask per box.

  Each mask is the pixels of the box's rectangle that still show its colour
  (a later rectangle may cover part of an earlier one), so a mask is not
  always its whole box.

  Returns:
    DetectionExamples whose masks are uint8 (num_boxes, SIZE, SIZE) in {0, 1}.
  """
  result = []
  for example in examples:
    masks = np.zeros((len(example.boxes), SIZE, SIZE), np.uint8)
    for index, (box, name) in enumerate(zip(example.boxes, example.class_names)):
      top, left, bottom, right = (int(value) for value in box)
      colour = np.all(example.image == shapes.SHAPE_COLOURS[name], axis=-1)
      masks[index, top:bottom, left:right] = colour[top:bottom, left:right]
    result.append(dataclasses.replace(example, masks=masks))
  return result


def _write_tiny_mask_config(work_dir):
  """The shipped Mask R-CNN GC config on generated data, made tiny.

  Returns:
    (path of pipeline.config, the validation DetectionExamples).
  """
  train_record = os.path.join(work_dir, 'train.tfrecord')
  val_record = os.path.join(work_dir, 'val.tfrecord')
  label_map = os.path.join(work_dir, 'label_map.pbtxt')
  tf_example.write_tfrecord(train_record, _with_masks(shapes.generate(
      seed=3, count=4, height=SIZE, width=SIZE, max_boxes=2)))
  val = _with_masks(shapes.generate(seed=5, count=2, height=SIZE, width=SIZE,
                                    max_boxes=2))
  tf_example.write_tfrecord(val_record, val)
  atomic_files.write_text(label_map, tf_example.label_map_text(shapes.SHAPE_COLOURS))
  text = open(CONFIG).read()
  text = text.replace('PATH_TO_BE_CONFIGURED/train2017-?????-of-00100.tfrecord',
                      train_record)
  text = text.replace('PATH_TO_BE_CONFIGURED/val2017-?????-of-00050.tfrecord',
                      val_record)
  text = text.replace('PATH_TO_BE_CONFIGURED/label_map.pbtxt', label_map)
  path = os.path.join(work_dir, 'pipeline.config')
  with open(path, 'w') as out:
    out.write(text)
  configs = config_util.get_configs_from_pipeline_file(path)
  configs = config_util.merge_external_params_with_configs(configs, kwargs_dict={
      'batch_size': 1, 'num_classes': len(shapes.SHAPE_COLOURS),
      'train_steps': STEPS})
  frcnn = configs['model'].faster_rcnn
  resizer = frcnn.image_resizer.keep_aspect_ratio_resizer
  resizer.min_dimension = resizer.max_dimension = SIZE
  # Anchors of 8 to 64 px for the 16-32 px objects (at the shipped 256 px base
  # every anchor is clipped to nearly the whole 64 px image).
  anchors = frcnn.first_stage_anchor_generator.grid_anchor_generator
  anchors.height = anchors.width = 32
  # Few, small crops: backpropagating through the box classifier and the mask
  # head on each crop dominates the step time at this input size. 4 is the
  # smallest batch the static sampler takes a positive into (1/4 of it).
  frcnn.first_stage_max_proposals = 8
  frcnn.second_stage_batch_size = 4
  frcnn.initial_crop_size = 4
  predictor = frcnn.second_stage_box_predictor.mask_rcnn_box_predictor
  predictor.mask_height = predictor.mask_width = MASK_SIZE
  post = frcnn.second_stage_post_processing.batch_non_max_suppression
  post.max_total_detections = post.max_detections_per_class = MAX_DETECTIONS
  train_config = configs['train_config']
  train_config.max_number_of_boxes = 4
  # No pretrained checkpoint on the test machines: a random start.
  train_config.ClearField('fine_tune_checkpoint')
  cosine = train_config.optimizer.adam_optimizer.learning_rate.cosine_decay_learning_rate
  cosine.total_steps, cosine.warmup_steps = 2 * STEPS, 10
  config_util.save_pipeline_config(
      config_util.create_pipeline_proto_from_configs(configs), work_dir)
  return path, val


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """(work_dir, pipeline.config path, model_dir, validation examples) after the
  stock trainer's first 100 steps."""
  work_dir = str(tmp_path_factory.mktemp('mask_rcnn_gc'))
  config, val = _write_tiny_mask_config(work_dir)
  model_dir = os.path.join(work_dir, 'model')
  # GC_DETECTION_SEED (gc_detection.od_api.training.seeding) seeds the stock trainer's start.
  _run(['-m', 'object_detection.model_main_tf2', f'--pipeline_config_path={config}',
        f'--model_dir={model_dir}', f'--num_train_steps={STEPS}',
        f'--checkpoint_every_n={STEPS}'], env={'GC_DETECTION_SEED': '1'})
  return work_dir, config, model_dir, val


@pytest.fixture(scope='module')
def exported(trained):
  """The stock exporter's output directory for the trained checkpoint."""
  work_dir, config, model_dir, _ = trained
  output = os.path.join(work_dir, 'exported')
  _run(['-m', 'object_detection.exporter_main_v2', '--input_type=image_tensor',
        f'--pipeline_config_path={config}', f'--trained_checkpoint_dir={model_dir}',
        f'--output_directory={output}'])
  return output


def test_the_stock_decoder_reads_the_written_masks():
  example = _with_masks(shapes.generate(seed=7, count=1, height=SIZE, width=SIZE,
                                        max_boxes=3))[0]
  decoder = tf_example_decoder.TfExampleDecoder(
      load_instance_masks=True, instance_mask_type=input_reader_pb2.PNG_MASKS)
  decoded = decoder.decode(tf.constant(
      tf_example.to_tf_example(example).SerializeToString()))
  masks = decoded[fields.InputDataFields.groundtruth_instance_masks].numpy()
  assert masks.shape == example.masks.shape, 'one (height, width) mask per box'
  np.testing.assert_array_equal(masks, example.masks.astype(np.float32),
                                err_msg='decoded masks differ from the written ones')
  with pytest.raises(ValueError, match=r'masks must have shape'):
    tf_example.to_tf_example(dataclasses.replace(example, masks=example.masks[:, 1:]))


def test_the_stock_trainer_writes_finite_gc_and_mask_weights(trained):
  _, _, model_dir, _ = trained
  checkpoint = tf.train.latest_checkpoint(model_dir)
  assert checkpoint is not None, f'no checkpoint in {model_dir}'
  reader = tf.train.load_checkpoint(checkpoint)
  assert reader.get_tensor('step/.ATTRIBUTES/VARIABLE_VALUE') == STEPS
  shape_map = reader.get_variable_to_shape_map()
  # GC keys look like model/_feature_extractor_for_proposal_features/
  # layer_with_weights-N/block_0.Sqkv_kernel/.ATTRIBUTES/VARIABLE_VALUE.
  gc_shapes = {match.group(1) + '/' + match.group(2): tuple(shape)
               for key, shape in shape_map.items()
               for match in [re.fullmatch(
                   r'model/_feature_extractor_for_proposal_features/.*/'
                   r'(block_\d+)\.S(\w+)/\.ATTRIBUTES/VARIABLE_VALUE', key)]
               if match}
  heads, head_channels = 4, C4_CHANNELS // 4 // 4  # the shipped 1 x 4, ratio 4
  assert gc_shapes == {
      f'block_0/{name}': shape for name, shape in (
          ('qkv_kernel', (C4_CHANNELS, 3, heads, head_channels)),
          ('qkv_bias', (3, heads, head_channels)),
          ('output_kernel', (heads, head_channels, C4_CHANNELS)),
          ('output_bias', (C4_CHANNELS,)))}, (
              f'GC variables in the checkpoint: {gc_shapes}')
  # Adam's first moment of a weight is nonzero only if some step gave it a
  # nonzero gradient: for the mask head, only a positive box with its
  # ground-truth mask from the TFRecord does.
  first_moments = {
      part: [key for key in shape_map if re.fullmatch(
          rf'model/{prefix}.*kernel/\.OPTIMIZER_SLOT/optimizer/m/\.ATTRIBUTES/'
          r'VARIABLE_VALUE', key)]
      for part, prefix in (
          ('mask head', '_mask_rcnn_box_predictor/_third_stage_heads/mask_predictions'),
          ('GC module', r'_feature_extractor_for_proposal_features/.*block_0\.S'))}
  for part, keys in first_moments.items():
    assert keys, f'the checkpoint holds no Adam slots of the {part}'
    untrained = [key for key in keys if not np.any(reader.get_tensor(key))]
    assert not untrained, f'the {part} never got a gradient: {untrained}'
  not_finite = [key for key in shape_map
                if reader.get_variable_to_dtype_map()[key].is_floating and
                not np.all(np.isfinite(reader.get_tensor(key)))]
  assert not not_finite, f'non-finite values in {not_finite}'


def test_the_stock_evaluator_reports_coco_box_and_mask_metrics_once(trained):
  work_dir, config, model_dir, val = trained
  eval_dir = os.path.join(work_dir, 'eval_run')
  try:
    # train_config.num_steps (100) equals the checkpoint's step: the evaluator
    # exits after this one evaluation instead of waiting for a newer one.
    result = _run(['-m', 'object_detection.model_main_tf2',
                   f'--pipeline_config_path={config}', f'--model_dir={eval_dir}',
                   f'--checkpoint_dir={model_dir}', f'--num_train_steps={STEPS}',
                   '--eval_timeout=10'], timeout=280)
  except subprocess.TimeoutExpired:
    pytest.fail('the evaluator did not exit after evaluating the step-100 checkpoint')
  log = result.stderr
  assert f'Exiting evaluation at step {STEPS}' in log, log[-3000:]
  # Both COCO evaluators (boxes, then masks) saw every validation image.
  assert log.count(f'Performing evaluation on {len(val)} images.') == 2, log[-3000:]
  logged = dict(re.findall(r'\+ (\S+): (-?[\d.]+(?:e-?\d+)?)', log))
  for family in ('DetectionBoxes', 'DetectionMasks'):
    for metric in ('Precision/mAP', 'Precision/mAP@.50IOU', 'Recall/AR@100'):
      name = f'{family}_{metric}'
      assert name in logged, f'{name} not reported; reported: {sorted(logged)}'
      assert 0.0 <= float(logged[name]) <= 1.0, f'{name} = {logged[name]}'
  assert os.listdir(os.path.join(eval_dir, 'eval')), 'no eval summaries written'


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


def _reference_detections(config, model_dir, image):
  """Detections of the model rebuilt from `config` and model_dir's checkpoint.

  Args:
    image: uint8 (1, SIZE, SIZE, 3).

  Returns:
    The postprocess dict as NumPy: detection_boxes (1, D, 4), detection_scores
    and detection_classes (1, D, 0-based), num_detections (1,),
    detection_masks (1, D, MASK_SIZE, MASK_SIZE).
  """
  configs = config_util.get_configs_from_pipeline_file(config)
  model = model_builder.build(configs['model'], is_training=False)
  layer = model._feature_extractor.global_context  # pylint: disable=protected-access
  assert (layer.num_heads, layer.num_layers) == (4, 1), 'not the config\'s GC model'
  preprocessed, true_shapes = model.preprocess(tf.cast(image, tf.float32))
  model.predict(preprocessed, true_shapes)  # creates the variables
  tf.train.Checkpoint(model=model).restore(
      tf.train.latest_checkpoint(model_dir)).expect_partial(
          ).assert_existing_objects_matched()
  detections = model.postprocess(model.predict(preprocessed, true_shapes), true_shapes)
  return {key: value.numpy() for key, value in detections.items()}


def test_the_exported_model_serves_the_checkpoint_s_masks_without_gc_detection(
    trained, exported):
  work_dir, _, model_dir, _ = trained
  exported_config = os.path.join(exported, 'pipeline.config')
  assert '[gc_detection.protos.global_context]' in open(exported_config).read()
  image = shapes.generate(seed=11, count=1, height=SIZE, width=SIZE)[0].image[None]
  image_path = os.path.join(work_dir, 'image.npy')
  np.save(image_path, image)
  served_path = os.path.join(work_dir, 'served.json')
  _run(['-c', _SERVE_IN_FRESH_PROCESS, os.path.join(exported, 'saved_model'),
        image_path, served_path], env={'GC_DETECTION_AUTOREGISTER': '0'})
  served = {key: np.array(value) for key, value in json.load(open(served_path)).items()}
  assert not served['gc_detection_imported'], 'the serving process imported gc_detection'
  assert served['detection_masks'].shape == (1, MAX_DETECTIONS, MASK_SIZE, MASK_SIZE), (
      f'detection_masks {served["detection_masks"].shape}')

  local = _reference_detections(exported_config, model_dir, image)
  count = int(local['num_detections'][0])
  assert count > 0, 'the restored model detects nothing to compare'
  assert int(served['num_detections'][0]) == count
  for key in ('detection_scores', 'detection_boxes', 'detection_masks'):
    np.testing.assert_allclose(served[key][0, :count], local[key][0, :count],
                               atol=1e-4, err_msg=key)
  # The exporter reports 1-based class ids.
  np.testing.assert_array_equal(served['detection_classes'][0, :count],
                                local['detection_classes'][0, :count] + 1)
  masks = served['detection_masks'][0, :count]
  assert np.all((masks >= 0) & (masks <= 1)), 'masks are not probabilities'
