"""The stock / GC model pairs the benchmarks compare, by shipped config."""

# pair name -> (stock config, GC config) in pipeline_configs/.
PAIRS = {
    'faster_rcnn_r50': (
        'faster_rcnn_resnet50_v1_600x1024_coco.config',
        'faster_rcnn_resnet50_v1_gc_600x1024_coco.config'),
    'retinanet_r50': (
        'ssd_resnet50_v1_fpn_640x640_coco.config',
        'ssd_resnet50_v1_fpn_gc_640x640_coco.config'),
}
