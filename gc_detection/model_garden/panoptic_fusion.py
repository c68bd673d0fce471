"""Panoptic FPN's inference fusion: instances, then stuff, the rest void.

Category ids of the panoptic output (and of gc_detection's panoptic data):

  0              void (unlabelled, or no segment claimed the pixel)
  1 .. T         thing classes: the Mask R-CNN's detection classes
  T+1 .. T+S     stuff classes: semantic class s (1..S) is category T + s

The semantic head predicts S + 1 classes: 0 means "some thing", 1..S the
stuff classes. Instance ids are 1, 2, ... in the order the instances were
placed; stuff and void pixels have instance id 0.

The fusion (Kirillov et al., Panoptic Feature Pyramid Networks, 2019, Sec. 3):

1. Instances in descending score order, those with score >= score_threshold.
   Each mask (probabilities in its box) is pasted on the image and binarised
   at mask_binarize_threshold. An instance whose mask overlaps the pixels
   already taken by more than overlap_threshold of its area is dropped;
   otherwise it takes its pixels not yet taken.
2. Stuff: every stuff class of the semantic argmax whose pixels not taken by
   an instance cover at least stuff_area_threshold px takes them.
3. Everything else (the semantic "thing" class left over, small stuff regions,
   the padding beyond the image) is void.
"""
import tensorflow as tf

DETECTION_INPUTS = ('detection_boxes', 'detection_classes', 'detection_scores',
                    'detection_masks', 'num_detections')


def paste_mask(mask, box, height, width):
  """Pastes one box-relative mask on a height x width canvas.

  The mask's M x M pixels tile the box (pixel k spans y1 + k (y2 - y1) / M to
  y1 + (k + 1) (y2 - y1) / M), as official.vision's RoI features and mask
  targets sample it and its COCO evaluator pastes it; each canvas pixel
  centre reads the mask bilinearly, zero beyond its border. An all-ones mask
  binarised at 0.5 covers exactly the canvas pixels y1 .. y2 - 1 of integer
  box corners.

  Args:
    mask: float (M, M) probabilities in the box.
    box: float (4,) [y1, x1, y2, x2] in canvas pixels.
    height, width: int scalars, the canvas size.
  Returns:
    float32 (height, width).
  """
  box = tf.cast(box, tf.float32)
  size = tf.cast(tf.shape(mask)[0], tf.float32)
  box_height = tf.maximum(box[2] - box[0], 1e-3)
  box_width = tf.maximum(box[3] - box[1], 1e-3)
  # Canvas pixel j's centre j + 0.5 is at mask position
  # (j + 0.5 - y1) M / (y2 - y1) - 0.5, + 1 in the mask padded by one zero.
  first_row = ((0.5 - box[0]) * size / box_height + 0.5) / (size + 1.0)
  first_col = ((0.5 - box[1]) * size / box_width + 0.5) / (size + 1.0)
  last_row = first_row + (tf.cast(height, tf.float32) - 1.0) * size / (box_height * (size + 1.0))
  last_col = first_col + (tf.cast(width, tf.float32) - 1.0) * size / (box_width * (size + 1.0))
  padded = tf.pad(tf.cast(mask, tf.float32), [[1, 1], [1, 1]])
  pasted = tf.image.crop_and_resize(
      padded[tf.newaxis, :, :, tf.newaxis],
      tf.stack([first_row, first_col, last_row, last_col])[tf.newaxis], box_indices=[0],
      crop_size=tf.stack([height, width]), method='bilinear', extrapolation_value=0.0)
  return pasted[0, :, :, 0]


class PanopticFusion(tf.keras.layers.Layer):
  """Fuses Mask R-CNN detections and semantic logits into panoptic masks.

  Call arguments:
    detections: dict of the Mask R-CNN's inference outputs, batched:
      detection_boxes (B, N, 4) [y1, x1, y2, x2] px, detection_classes (B, N)
      1..T, detection_scores (B, N), detection_masks (B, N, M, M)
      probabilities, num_detections (B,).
    segmentation_logits: float (B, h, w, S + 1), resized to the canvas.
    image_shape: float (B, 2), each image's valid height and width in the
      canvas (pixels beyond are padding, void).
    canvas_size: (height, width) of the output masks (the model's input).
  Returns:
    dict of int32 (B, height, width): category_mask, instance_mask.
  """

  def __init__(self, num_thing_classes, score_threshold=0.5, overlap_threshold=0.5,
               stuff_area_threshold=4096, mask_binarize_threshold=0.5, **kwargs):
    super().__init__(**kwargs)
    self.num_thing_classes = num_thing_classes
    self.score_threshold = score_threshold
    self.overlap_threshold = overlap_threshold
    self.stuff_area_threshold = stuff_area_threshold
    self.mask_binarize_threshold = mask_binarize_threshold

  def get_config(self):
    config = super().get_config()
    config.update(num_thing_classes=self.num_thing_classes,
                  score_threshold=self.score_threshold,
                  overlap_threshold=self.overlap_threshold,
                  stuff_area_threshold=self.stuff_area_threshold,
                  mask_binarize_threshold=self.mask_binarize_threshold)
    return config

  def call(self, detections, segmentation_logits, image_shape, canvas_size):
    height, width = canvas_size
    semantic = tf.argmax(
        tf.image.resize(tf.cast(segmentation_logits, tf.float32), [height, width],
                        method='bilinear'), axis=-1, output_type=tf.int32)
    per_image = (tf.cast(detections['detection_boxes'], tf.float32),
                 tf.cast(detections['detection_classes'], tf.int32),
                 tf.cast(detections['detection_scores'], tf.float32),
                 tf.cast(detections['detection_masks'], tf.float32),
                 tf.cast(detections['num_detections'], tf.int32),
                 semantic, tf.cast(image_shape, tf.float32))
    category, instance = tf.map_fn(
        lambda args: self._fuse_one(*args, height=height, width=width), per_image,
        fn_output_signature=(tf.TensorSpec([height, width], tf.int32),
                             tf.TensorSpec([height, width], tf.int32)))
    return {'category_mask': category, 'instance_mask': instance}

  def _fuse_one(self, boxes, classes, scores, masks, num_detections, semantic,
                image_shape, height, width):
    """One image: (height, width) int32 category and instance masks."""
    rows = tf.range(height)[:, tf.newaxis]
    cols = tf.range(width)[tf.newaxis, :]
    inside = tf.logical_and(tf.cast(rows, tf.float32) < image_shape[0],
                            tf.cast(cols, tf.float32) < image_shape[1])
    order = tf.argsort(scores, direction='DESCENDING', stable=True)

    def place(rank, taken, category, instance, next_id):
      index = order[rank]
      mask = tf.logical_and(
          paste_mask(masks[index], boxes[index], height, width)
          >= self.mask_binarize_threshold, inside)
      area = tf.reduce_sum(tf.cast(mask, tf.float32))
      claimed = tf.logical_and(mask, tf.logical_not(taken))
      overlap = area - tf.reduce_sum(tf.cast(claimed, tf.float32))
      keep = tf.logical_and(area > 0.0, overlap <= self.overlap_threshold * area)
      claimed = tf.logical_and(claimed, keep)
      return (tf.where(claimed, classes[index], category),
              tf.where(claimed, next_id, instance),
              tf.logical_or(taken, claimed),
              next_id + tf.cast(keep, tf.int32))

    def step(rank, taken, category, instance, next_id):
      index = order[rank]
      eligible = tf.logical_and(index < num_detections,
                                scores[index] >= self.score_threshold)
      category, instance, taken, next_id = tf.cond(
          eligible, lambda: place(rank, taken, category, instance, next_id),
          lambda: (category, instance, taken, next_id))
      return rank + 1, taken, category, instance, next_id

    empty = tf.zeros([height, width], tf.int32)
    _, taken, category, instance, _ = tf.while_loop(
        lambda rank, *_: rank < tf.shape(order)[0], step,
        (tf.constant(0), tf.zeros([height, width], tf.bool), empty, empty,
         tf.constant(1)))
    free = tf.logical_and(inside, tf.logical_not(taken))
    free_semantic = tf.where(free, semantic, 0)
    num_semantic = tf.reduce_max(semantic) + 1
    areas = tf.math.bincount(tf.reshape(free_semantic, [-1]),
                             minlength=num_semantic, dtype=tf.float32)
    large = tf.gather(areas >= self.stuff_area_threshold, free_semantic)
    is_stuff = tf.logical_and(tf.logical_and(free, free_semantic > 0), large)
    category = tf.where(is_stuff, free_semantic + self.num_thing_classes, category)
    return category, instance
