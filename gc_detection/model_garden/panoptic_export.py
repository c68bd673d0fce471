"""The Panoptic FPN's serving module for official.vision's SavedModel exporter.

official.vision's exporter (`serving.export_saved_model_lib`) picks its
module by task config; a Panoptic FPN config is a Mask R-CNN config to it, so
it would export the detector alone. This module is official.vision's
DetectionModule (its preprocessing, anchors and signatures) with the
Panoptic FPN built and served. Its `image_tensor` signature returns, for uint8
images (B, h, w, 3):

  detection_boxes (B, N, 4) px of the model canvas, detection_scores (B, N),
  detection_classes (B, N), num_detections (B,), detection_masks (B, N, M, M),
  category_mask, instance_mask int32 (B, H, W) on the model canvas
  (gc_detection.model_garden.panoptic_fusion's ids), image_info (B, 4, 2)
  to map the canvas back to each image.

The SavedModel needs only TensorFlow to serve.
"""
import tensorflow as tf

from official.vision.serving import detection

from gc_detection.model_garden import panoptic_model
from gc_detection.model_garden import true_image_sizes

SERVED_OUTPUTS = ('detection_boxes', 'detection_scores', 'detection_classes',
                  'num_detections', 'detection_masks', 'category_mask', 'instance_mask')


class PanopticModule(detection.DetectionModule):
  """official.vision's DetectionModule serving a Panoptic FPN."""

  def _build_model(self):
    input_specs = tf.keras.layers.InputSpec(shape=[self._batch_size, *self._padded_size, 3])
    return panoptic_model.build_panoptic_fpn(input_specs, self.params.task.model)

  def serve(self, images):
    """uint8 (B, h, w, 3) images -> the dict of the module docstring."""
    if self._input_type == 'tflite':
      raise ValueError("input_type: 'tflite' is not served by the Panoptic FPN module")
    images, anchor_boxes, image_info = self.preprocess(images)
    with true_image_sizes.scope_of(self.model, image_info):
      outputs = self.model.call(images=images, image_shape=image_info[:, 1, :],
                                anchor_boxes=anchor_boxes, training=False)
    served = {name: outputs[name] for name in SERVED_OUTPUTS}
    served['image_info'] = image_info
    return served
