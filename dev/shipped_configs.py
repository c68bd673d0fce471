"""Every config of pipeline_configs/ but far_cue/: the paper's models, baselines and ablations.

The configs share almost everything, so they are rendered from one template
per meta-architecture (dev/faster_rcnn_configs.py, dev/retinanet_configs.py);
a test checks that the committed files equal this output.
dev/write_pipeline_configs.py writes them.
"""
import os

from faster_rcnn_configs import FasterRcnnConfig  # dev/, beside this module
from gc_detection import atomic_files
from retinanet_configs import RetinaNetConfig


def _retinanet(depth, with_gc, keep_aspect):
  size = '600x1024' if keep_aspect else '640x640'
  gc = '_gc' if with_gc else ''
  paper = {(50, False): 35.9, (50, True): 37.3, (101, False): 37.5,
           (101, True): 38.4}.get((depth, with_gc))
  return RetinaNetConfig(
      f'ssd_resnet{depth}_v1_fpn{gc}_{size}_coco.config', depth, with_gc,
      keep_aspect,
      paper_ap=(f'Paper Table 2: {paper} AP on COCO val2017.' if paper else
                'Not in the paper; same settings as R-50/101.'))


def _table3(layers, heads, ap):
  return FasterRcnnConfig(
      f'ablations/faster_rcnn_resnet50_v1_gc_{layers}x{heads}_600x1024_coco.config',
      50, (layers, heads),
      paper_ap=f'Paper Table 3 ablation, {layers} x {heads}: {ap} AP on COCO '
               'val2017 (R-50).')


CONFIGS = [
    FasterRcnnConfig('faster_rcnn_resnet50_v1_600x1024_coco.config', 50,
                     paper_ap='Paper Table 1 baseline: 30.1 AP on COCO val2017.'),
    FasterRcnnConfig('faster_rcnn_resnet101_v1_600x1024_coco.config', 101,
                     paper_ap='Paper Table 1 baseline: 33.9 AP on COCO val2017.'),
    FasterRcnnConfig('faster_rcnn_resnet50_v1_gc_600x1024_coco.config', 50, (1, 4),
                     paper_ap='Paper Table 1: 34.1 AP on COCO val2017 '
                              '(baseline 30.1).'),
    FasterRcnnConfig('faster_rcnn_resnet101_v1_gc_600x1024_coco.config', 101,
                     (1, 4), paper_ap='Paper Table 1: 35.9 AP on COCO val2017 '
                                      '(baseline 33.9).'),
    FasterRcnnConfig('faster_rcnn_resnet152_v1_gc_600x1024_coco.config', 152,
                     (1, 4), paper_ap='Not in the paper; same settings as R-50/101.'),
    FasterRcnnConfig('mask_rcnn_resnet50_v1_gc_600x1024_coco.config', 50, (1, 4),
                     with_masks=True,
                     paper_ap='Not in the paper: the Faster R-CNN + GC model with '
                              'the OD API\'s mask head.'),
] + [_retinanet(depth, with_gc, keep_aspect)
      for depth in (50, 101) for with_gc in (False, True)
      for keep_aspect in (False, True)] + [
          _retinanet(152, True, False), _retinanet(152, True, True)] + [
              _table3(*row) for row in (
    (1, 1, 33.1), (1, 2, 33.8), (1, 4, 34.1), (1, 8, 33.7), (1, 16, 33.5),
    (2, 2, 27.3), (2, 4, 31.7), (2, 8, 31.5), (2, 16, 32.2), (3, 16, 31.7))]


def write_all(output_dir):
  """Writes every config under output_dir; returns their paths."""
  paths = []
  for config in CONFIGS:
    path = os.path.join(output_dir, config.filename)
    atomic_files.write_text(path, config.render())
    paths.append(path)
  return paths
