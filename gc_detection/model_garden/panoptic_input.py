"""Panoptic FPN input: official.vision's Mask R-CNN input plus panoptic masks.

tf.Examples hold what official.vision's Mask R-CNN reads (image, boxes,
classes, one PNG mask per instance) plus the panoptic masks under the keys
official.vision's `tf_example_builder.add_panoptic_mask_matrix_feature`
writes (`image/panoptic/category/encoded`, `image/panoptic/instance/encoded`:
8-bit single-channel PNGs of the image's size; category ids as in
gc_detection.model_garden.panoptic_fusion, instance ids unique per image).

Training adds `gt_segmentation_mask` (padded_h, padded_w, 1) int32 to the
labels: the semantic classes (0 any thing, s stuff T + s) resized and cropped
exactly as the image was, unlabelled and padding pixels at the ignore label.
Evaluation adds `panoptic_groundtruths` to the labels: `category_mask`,
`instance_mask` (gt_h, gt_w) int32 at the image's original size padded with
void to groundtruth_padded_size, and `image_info` (kept apart from the stock
`groundtruths`, which the COCO evaluator may hold for the whole evaluation).
"""
import tensorflow as tf

from official.vision.dataloaders import maskrcnn_input
from official.vision.dataloaders import tf_example_decoder
from official.vision.data import tf_example_feature_key
from official.vision.ops import preprocess_ops

_PANOPTIC_KEYS = tf_example_feature_key.EncodedPanopticMaskFeatureKey()


class Decoder(tf_example_decoder.TfExampleDecoder):
  """official.vision's tf.Example decoder (with instance masks) + panoptic masks.

  Adds groundtruth_panoptic_category_mask and groundtruth_panoptic_instance_mask,
  int32 (height, width, 1), to the decoded dict.
  """

  def __init__(self, **kwargs):
    super().__init__(include_mask=True, **kwargs)
    self._panoptic_features = {
        _PANOPTIC_KEYS.category_mask: tf.io.FixedLenFeature((), tf.string),
        _PANOPTIC_KEYS.instance_mask: tf.io.FixedLenFeature((), tf.string),
    }

  def decode(self, serialized_example):
    decoded = super().decode(serialized_example)
    parsed = tf.io.parse_single_example(serialized_example, self._panoptic_features)
    for key, name in ((_PANOPTIC_KEYS.category_mask, 'category'),
                      (_PANOPTIC_KEYS.instance_mask, 'instance')):
      mask = tf.cast(tf.io.decode_png(parsed[key], channels=1), tf.int32)
      mask.set_shape([None, None, 1])
      decoded[f'groundtruth_panoptic_{name}_mask'] = mask
    return decoded


def semantic_labels(category_mask, num_thing_classes, ignore_label):
  """Semantic classes of a panoptic category mask (any shape, int32).

  void (0) -> ignore_label, thing 1..T -> 0, stuff T + s -> s.
  """
  return tf.where(category_mask == 0, ignore_label,
                  tf.maximum(category_mask - num_thing_classes, 0))


class Parser(maskrcnn_input.Parser):
  """official.vision's Mask R-CNN parser with the panoptic labels.

  The random flips are drawn here, once for the image, boxes, instance masks
  and semantic mask together, and the stock parser runs without flips; its
  scale jitter and crop are replayed on the semantic mask from the image_info
  it returns.
  """

  def __init__(self, num_thing_classes, semantic_ignore_label, groundtruth_padded_size,
               aug_rand_hflip=False, aug_rand_vflip=False, **kwargs):
    super().__init__(aug_rand_hflip=False, aug_rand_vflip=False, include_mask=True,
                     **kwargs)
    self._num_thing_classes = num_thing_classes
    self._semantic_ignore_label = semantic_ignore_label
    self._groundtruth_padded_size = list(groundtruth_padded_size)
    self._flips = (('horizontal', aug_rand_hflip, preprocess_ops.random_horizontal_flip),
                   ('vertical', aug_rand_vflip, preprocess_ops.random_vertical_flip))

  def _parse_train_data(self, data):
    semantic = semantic_labels(data['groundtruth_panoptic_category_mask'],
                               self._num_thing_classes, self._semantic_ignore_label)
    image, boxes = data['image'], data['groundtruth_boxes']
    masks = tf.concat([data['groundtruth_instance_masks'],
                       tf.cast(tf.transpose(semantic, [2, 0, 1]), tf.float32)], axis=0)
    for _, enabled, flip in self._flips:
      if enabled:
        image, boxes, masks = flip(image, boxes, masks=masks, prob=0.5)
    data = dict(data, image=image, groundtruth_boxes=boxes,
                groundtruth_instance_masks=masks[:-1])
    image, labels = super()._parse_train_data(data)

    image_info = labels['image_info']
    height, width = image.get_shape().as_list()[0:2]
    # +1 so that the crop's zero padding can be told from class 0.
    shifted = masks[-1:, :, :, tf.newaxis] + 1.0
    shifted = preprocess_ops.resize_and_crop_masks(
        shifted, image_info[2, :], [height, width], image_info[3, :])[0]
    shifted = tf.cast(tf.round(shifted), tf.int32)
    semantic = tf.where(shifted == 0, self._semantic_ignore_label, shifted - 1)
    semantic.set_shape([height, width, 1])
    labels['gt_segmentation_mask'] = semantic
    return image, labels

  def _parse_eval_data(self, data):
    image, labels = super()._parse_eval_data(data)
    height, width = self._groundtruth_padded_size
    shape = tf.shape(data['groundtruth_panoptic_category_mask'])
    fits = tf.debugging.assert_less_equal(
        shape[0:2], tf.constant([height, width]),
        message=('parser.groundtruth_padded_size: an evaluation image is larger '
                 f'than {height}x{width}; raise it to the largest image size'))
    panoptic = {'image_info': labels['image_info']}
    with tf.control_dependencies([fits]):
      for name in ('category', 'instance'):
        mask = data[f'groundtruth_panoptic_{name}_mask']
        panoptic[f'{name}_mask'] = tf.image.pad_to_bounding_box(
            mask, 0, 0, height, width)[:, :, 0]
    labels['panoptic_groundtruths'] = panoptic
    return image, labels
