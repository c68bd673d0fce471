"""gc_detection around the OD API's stock exporter (exporter_lib_v2).

exporter_main_v2 parses pipeline.config itself (text_format, not config_util)
and hands the pipeline to export_inference_graph, which builds the model from
`pipeline.model`: the export runs inside the pipeline's scope
(pipeline_binding), so the model gets the pipeline's GC settings.
"""
import functools

from gc_detection.od_api import pipeline_binding


def export_in_scope(export_inference_graph):
  """A touch-point change of exporter_lib_v2.export_inference_graph."""
  @functools.wraps(export_inference_graph)
  def scoped_export(input_type, pipeline_config, *args, **kwargs):
    with pipeline_binding.pipeline_scope(pipeline_config):
      return export_inference_graph(input_type, pipeline_config, *args, **kwargs)
  return scoped_export
