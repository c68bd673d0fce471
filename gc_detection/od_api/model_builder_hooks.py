"""gc_detection in the OD API's model_builder: the GC types and their builds.

- The GC feature-extractor classes join model_builder's two class maps under
  their `type` names (type name -> class, the maps' contract).
- Each model_builder build of a Faster R-CNN or SSD model runs through
  `build_with_bound_settings`: it names an unknown extractor type with the
  closest ones, marks the build in progress (pipeline_binding.building), so
  that a GC extractor built without explicit settings takes its pipeline's,
  records the built GC extractor in the pipeline's binding (the hybrid
  optimizer needs its module) and, when its settings ignore padding, makes the
  model's predict pass each image's true shape to the module
  (true_image_shapes.pass_to_module).
"""
import difflib
import functools
import weakref

from gc_detection.layers import global_context_settings as settings_lib
from gc_detection.od_api import extension_settings
from gc_detection.od_api import pipeline_binding
from gc_detection.od_api import true_image_shapes

# model_builder class map -> {GC type name: (extractor module, class name)}.
GC_TYPES = {
    'FASTER_RCNN_KERAS_FEATURE_EXTRACTOR_CLASS_MAP': {
        'faster_rcnn_resnet50_gc': ('faster_rcnn_resnet_gc_feature_extractor',
                                    'FasterRCNNResnet50GCKerasFeatureExtractor'),
        'faster_rcnn_resnet101_gc': ('faster_rcnn_resnet_gc_feature_extractor',
                                     'FasterRCNNResnet101GCKerasFeatureExtractor'),
        'faster_rcnn_resnet152_gc': ('faster_rcnn_resnet_gc_feature_extractor',
                                     'FasterRCNNResnet152GCKerasFeatureExtractor'),
    },
    'SSD_KERAS_FEATURE_EXTRACTOR_CLASS_MAP': {
        'ssd_resnet50_v1_fpn_gc': ('ssd_resnet_v1_fpn_gc_feature_extractor',
                                   'SSDResNet50V1FpnGCKerasFeatureExtractor'),
        'ssd_resnet101_v1_fpn_gc': ('ssd_resnet_v1_fpn_gc_feature_extractor',
                                    'SSDResNet101V1FpnGCKerasFeatureExtractor'),
        'ssd_resnet152_v1_fpn_gc': ('ssd_resnet_v1_fpn_gc_feature_extractor',
                                    'SSDResNet152V1FpnGCKerasFeatureExtractor'),
    },
}
# meta architecture -> the class map its extractor type is looked up in.
CLASS_MAP_OF = {'faster_rcnn': 'FASTER_RCNN_KERAS_FEATURE_EXTRACTOR_CLASS_MAP',
                'ssd': 'SSD_KERAS_FEATURE_EXTRACTOR_CLASS_MAP'}


def gc_types():
  """Every GC feature-extractor type name, sorted."""
  return sorted(name for types in GC_TYPES.values() for name in types)


def extractor_class(module_name, class_name):
  import importlib  # pylint: disable=g-import-not-at-top
  module = importlib.import_module(f'gc_detection.od_api.extractors.{module_name}')
  return getattr(module, class_name)


def _add_gc_types(class_map_name, class_map):
  for type_name, (module_name, class_name) in GC_TYPES[class_map_name].items():
    class_map.setdefault(type_name, extractor_class(module_name, class_name))
  return class_map


def add_faster_rcnn_types(class_map):
  """Touch point: FASTER_RCNN_KERAS_FEATURE_EXTRACTOR_CLASS_MAP gains the GC classes."""
  return _add_gc_types('FASTER_RCNN_KERAS_FEATURE_EXTRACTOR_CLASS_MAP', class_map)


def add_ssd_types(class_map):
  """Touch point: SSD_KERAS_FEATURE_EXTRACTOR_CLASS_MAP gains the GC classes."""
  return _add_gc_types('SSD_KERAS_FEATURE_EXTRACTOR_CLASS_MAP', class_map)


def gc_extractor_of(model):
  """The model's GC feature extractor, or None for a stock model.

  Reads the public `feature_extractor` property of the OD API's Faster
  R-CNN and SSD meta-architectures.
  """
  from gc_detection.od_api.extractors import global_context_extractor  # pylint: disable=g-import-not-at-top
  extractor = getattr(model, 'feature_extractor', None)
  if isinstance(extractor, global_context_extractor.GlobalContextExtractor):
    return extractor
  return None


def _check_extractor_type(meta_architecture, meta_config):
  """Raises GlobalContextConfigError naming the closest types of an unknown one."""
  from object_detection.builders import model_builder  # pylint: disable=g-import-not-at-top

  known = getattr(model_builder, CLASS_MAP_OF[meta_architecture])
  extractor_type = meta_config.feature_extractor.type
  if extractor_type not in known:
    close = difflib.get_close_matches(extractor_type, list(known), n=3)
    hint = f' Did you mean {" or ".join(close)}?' if close else ''
    raise extension_settings.ConfigError(
        f'Unknown {meta_architecture} feature_extractor type {extractor_type!r}.'
        f'{hint} Global-context types: {", ".join(gc_types())}.')


def _with_bound_settings(meta_architecture, build_meta_architecture):
  """Wraps META_ARCH_BUILDER_MAP[meta_architecture] (see the module docstring)."""
  @functools.wraps(build_meta_architecture)
  def build(meta_config, *args, **kwargs):
    _check_extractor_type(meta_architecture, meta_config)
    with pipeline_binding.building(meta_config) as binding:
      try:
        model = build_meta_architecture(meta_config, *args, **kwargs)
      except settings_lib.InvalidGlobalContextSettings as error:
        raise extension_settings.ConfigError(
            f'pipeline.config {extension_settings.EXTENSION_NAME} {error}') from error
    extractor = gc_extractor_of(model)
    if binding is not None and extractor is not None:
      binding.built_extractor = weakref.ref(extractor)
    if extractor is not None and extractor.gc_settings.ignore_padding:
      true_image_shapes.pass_to_module(model)
    return model
  return build


def build_faster_rcnn_with_bound_settings(build_faster_rcnn):
  """Touch point: META_ARCH_BUILDER_MAP['faster_rcnn']."""
  return _with_bound_settings('faster_rcnn', build_faster_rcnn)


def build_ssd_with_bound_settings(build_ssd):
  """Touch point: META_ARCH_BUILDER_MAP['ssd']."""
  return _with_bound_settings('ssd', build_ssd)
