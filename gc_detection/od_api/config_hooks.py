"""gc_detection in the OD API's config_util: one parse path, bound pipelines.

- get_configs_from_pipeline_file reads the file through
  pipeline_files.read_pipeline first, so a missing, binary or unparsable
  pipeline.config (or one with two GC extensions) is one error naming file,
  line and field, on every entry point;
- create_configs_from_pipeline_proto (every parse through config_util) binds
  the parsed pipeline (pipeline_binding.bind);
- create_pipeline_proto_from_configs, which knows only the stock fields, puts
  the GC extension of the bound pipeline back (the trainer saves its result
  to model_dir as pipeline.config).
"""
import functools

from gc_detection.od_api import extension_settings
from gc_detection.od_api import pipeline_binding
from gc_detection.od_api import pipeline_files


def read_pipeline_first(get_configs_from_pipeline_file):
  """A touch-point change of config_util.get_configs_from_pipeline_file."""
  @functools.wraps(get_configs_from_pipeline_file)
  def get_configs_naming_errors(pipeline_config_path, config_override=None,
                                *args, **kwargs):
    pipeline_files.read_pipeline(pipeline_config_path)
    if config_override:
      pipeline_files.check_pipeline_text('--config_override', config_override)
    return get_configs_from_pipeline_file(pipeline_config_path, config_override,
                                          *args, **kwargs)
  return get_configs_naming_errors


def bind_after_parse(create_configs_from_pipeline_proto):
  """A touch-point change of config_util.create_configs_from_pipeline_proto."""
  @functools.wraps(create_configs_from_pipeline_proto)
  def create_configs_and_bind(pipeline_config):
    configs = create_configs_from_pipeline_proto(pipeline_config)
    pipeline_binding.bind(pipeline_config)
    return configs
  return create_configs_and_bind


def keep_extension(create_pipeline_proto_from_configs):
  """A touch-point change of config_util.create_pipeline_proto_from_configs."""
  @functools.wraps(create_pipeline_proto_from_configs)
  def create_pipeline_proto_with_extension(configs):
    pipeline = create_pipeline_proto_from_configs(configs)
    binding = pipeline_binding.binding_of_model_config(configs['model'])
    if binding is not None and binding.extension is not None:
      pipeline.Extensions[extension_settings.extension_descriptor()].CopyFrom(
          binding.extension)
    return pipeline
  return create_pipeline_proto_with_extension
