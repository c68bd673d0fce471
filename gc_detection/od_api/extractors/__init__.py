"""Feature extractors of gc_detection: thin subclasses of the OD API's.

They know nothing of protobuf: their settings arrive as a
GlobalContextSettings (gc_detection.od_api.pipeline_binding finds the
pipeline's when none is passed).
"""
