"""Feature extractors of gc_detection: thin subclasses of the OD API's.

They know nothing of protobuf: their settings arrive as a
GlobalContextSettings (see gc_detection.registry for how).
"""
