"""The module's kernels get the model's weight decay, with the model's factor.

Reference: a float64 hand computation from the configured number, with each
framework's documented convention: the OD API's Keras ResNet (Faster R-CNN)
uses tf.keras l2(weight_decay), i.e. weight_decay * sum(k^2); the OD API's
hyperparams builder turns `l2_regularizer { weight: w }` (SSD's
conv_hyperparams) into l2(0.5 * w). The module's share of the model's
regularization losses is measured as the change of their sum when its kernels
are zeroed.
"""
import numpy as np
import pytest
import tensorflow as tf

import conftest  # pylint: disable=unused-import
from gc_detection.od_api import model_builder_hooks
from gc_detection.od_api.extractors import faster_rcnn_resnet_gc_feature_extractor as frcnn
import tiny_configs


def _randomise(layer, seed):
  """Gives every module weight random values; returns {name: float64 array}."""
  rng = np.random.default_rng(seed)
  values = {}
  for variable in layer.weights:
    value = rng.normal(0.0, 0.1, variable.shape)
    variable.assign(value.astype(np.float32))
    values[variable.name] = value
  return values


def _module_share(losses_fn, layer):
  """Sum of losses_fn() minus the same with the module's kernels at zero."""
  total = float(tf.add_n(losses_fn()).numpy())
  for variable in layer.weights:
    if 'kernel' in variable.name:
      variable.assign(tf.zeros_like(variable))
  return total - float(tf.add_n(losses_fn()).numpy())


def _kernel_squares(values):
  return sum(float(np.sum(value ** 2)) for name, value in values.items()
             if 'kernel' in name)


def test_faster_rcnn_module_kernels_get_the_resnets_weight_decay():
  weight_decay = 3e-4
  extractor = frcnn.FasterRCNNResnet50GCKerasFeatureExtractor(
      is_training=False, weight_decay=weight_decay)
  model = extractor.get_proposal_feature_extractor_model(name='proposal')
  model(tf.zeros((1, 64, 64, 3)))
  layer = extractor.global_context
  values = _randomise(layer, seed=0)

  share = _module_share(lambda: model.losses, layer)

  assert share == pytest.approx(weight_decay * _kernel_squares(values), rel=1e-4)
  # Biases are not decayed, as in the stock ResNet.
  assert len(layer.losses) == 2 * layer.num_layers


def test_ssd_module_kernels_get_the_conv_hyperparams_regularizer(tmp_path):
  configs = tiny_configs.configs('ssd_resnet50_v1_fpn_gc_640x640_coco.config', 160, tmp_path)
  hyperparams = configs['model'].ssd.feature_extractor.conv_hyperparams
  weight = hyperparams.regularizer.l2_regularizer.weight
  assert weight > 0
  model = tiny_configs.built_model(configs, 160)
  layer = model_builder_hooks.gc_extractor_of(model).global_context
  values = _randomise(layer, seed=1)

  share = _module_share(model.regularization_losses, layer)

  assert share == pytest.approx(0.5 * weight * _kernel_squares(values), rel=1e-4)


def test_no_weight_decay_means_no_module_losses():
  extractor = frcnn.FasterRCNNResnet50GCKerasFeatureExtractor(is_training=False)
  model = extractor.get_proposal_feature_extractor_model(name='proposal')
  model(tf.zeros((1, 64, 64, 3)))
  assert extractor.global_context.losses == []
