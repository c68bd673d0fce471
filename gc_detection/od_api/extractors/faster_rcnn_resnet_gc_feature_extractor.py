"""Faster R-CNN ResNet feature extractors with the global-context module.

Paper Fig. 3: GlobalContextAttention refines the C4 map (conv4 output, 1024
channels, stride 16) once, before the RPN. The OD API's Faster R-CNN feeds the
output of the proposal feature extractor both to the RPN and to the
second-stage crops (crop_and_resize / RoIAlign), so both read the refined map.
The C5 box classifier is the stock one.

Checkpoint compatibility: the proposal model is the stock functional model
with one layer appended after its last layer, so every stock layer keeps its
position (Keras checkpoints track functional layers by position) and a stock
`faster_rcnn_resnet*_keras` checkpoint restores into every stock variable.
"""
import tensorflow as tf

from object_detection.models import faster_rcnn_resnet_keras_feature_extractor as stock
from object_detection.models.keras_models import resnet_v1

from gc_detection.od_api.extractors import global_context_extractor


class FasterRCNNResnetGCKerasFeatureExtractor(
    global_context_extractor.GlobalContextExtractor,
    stock.FasterRCNNResnetKerasFeatureExtractor):
  """The stock ResNet extractor with GlobalContextAttention after C4."""
  GLOBAL_CONTEXT_STAGE = 'conv4'
  GLOBAL_CONTEXT_CHANNELS = 1024
  GLOBAL_CONTEXT_STRIDE = 16  # the stock extractor accepts no other

  def __init__(self,
               is_training,
               resnet_v1_base_model,
               resnet_v1_base_model_name,
               first_stage_features_stride=16,
               batch_norm_trainable=False,
               weight_decay=0.0,
               gc_settings=None):
    """Constructor; see the stock class for the other arguments.

    Args:
      gc_settings: a GlobalContextSettings (None: the pipeline's being built,
        else the paper's defaults). The module's kernels get the stock
        ResNet's l2(weight_decay).

    Raises:
      settings_lib.InvalidGlobalContextSettings: the settings do not suit
        the model.
    """
    super().__init__(
        is_training=is_training,
        resnet_v1_base_model=resnet_v1_base_model,
        resnet_v1_base_model_name=resnet_v1_base_model_name,
        first_stage_features_stride=first_stage_features_stride,
        batch_norm_trainable=batch_norm_trainable,
        weight_decay=weight_decay)
    self._init_global_context(gc_settings, resnet_v1_base_model_name,
                              global_context_extractor.l2_regularizer(weight_decay))
    self.stock_proposal_model = None

  def get_proposal_feature_extractor_model(self, name=None):
    """Returns the stock C4 model with the global-context layer appended.

    Input: (N, H, W, 3) preprocessed images. Output: (N, H/16, W/16, 1024),
    the refined C4 map the RPN and the box crops read.
    """
    stock_model = super().get_proposal_feature_extractor_model(name=name)
    # The stock C4 model, sharing every layer with the returned one: what a
    # stock detection checkpoint is restored through (stock_view_swaps).
    self.stock_proposal_model = stock_model
    refined = self.global_context(stock_model.output)
    keras_model = tf.keras.Model(inputs=stock_model.inputs, outputs=refined)
    for variable in self.global_context.variables:
      self._variable_dict[variable.name[:-2]] = variable
    return keras_model

  def global_context_input(self, preprocessed_inputs):
    """(N, H, W, 3) -> (N, H/16, W/16, 1024): the stock C4 map."""
    if self.stock_proposal_model is None:
      raise ValueError(f'{type(self).__name__}.global_context_input: run the '
                       'detection model once first')
    return self.stock_proposal_model(preprocessed_inputs)

  def stock_view_swaps(self, model, checkpoint_type):
    # "classification" restores the full ResNet, which has no GC layer.
    if checkpoint_type != 'detection':
      return []
    return [(model, '_feature_extractor_for_proposal_features',
             self.stock_proposal_model)]


class FasterRCNNResnet50GCKerasFeatureExtractor(FasterRCNNResnetGCKerasFeatureExtractor):
  """Faster R-CNN ResNet-50 + global context (the stock class's arguments)."""

  def __init__(self, is_training, first_stage_features_stride=16,
               batch_norm_trainable=False, weight_decay=0.0, gc_settings=None):
    super().__init__(is_training, resnet_v1.resnet_v1_50, 'resnet_v1_50',
                     first_stage_features_stride, batch_norm_trainable,
                     weight_decay, gc_settings)


class FasterRCNNResnet101GCKerasFeatureExtractor(FasterRCNNResnetGCKerasFeatureExtractor):
  """Faster R-CNN ResNet-101 + global context (the stock class's arguments)."""

  def __init__(self, is_training, first_stage_features_stride=16,
               batch_norm_trainable=False, weight_decay=0.0, gc_settings=None):
    super().__init__(is_training, resnet_v1.resnet_v1_101, 'resnet_v1_101',
                     first_stage_features_stride, batch_norm_trainable,
                     weight_decay, gc_settings)


class FasterRCNNResnet152GCKerasFeatureExtractor(FasterRCNNResnetGCKerasFeatureExtractor):
  """Faster R-CNN ResNet-152 + global context (the stock class's arguments)."""

  def __init__(self, is_training, first_stage_features_stride=16,
               batch_norm_trainable=False, weight_decay=0.0, gc_settings=None):
    super().__init__(is_training, resnet_v1.resnet_v1_152, 'resnet_v1_152',
                     first_stage_features_stride, batch_norm_trainable,
                     weight_decay, gc_settings)
