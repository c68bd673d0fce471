"""Python modules generated from protos/*.proto (by scripts/setup.sh).

The *_pb2.py files here are build outputs of gc_detection.tools.compile_protos
and are never edited by hand or committed.
"""
