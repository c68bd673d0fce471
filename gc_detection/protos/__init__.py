"""Python modules generated from protos/*.proto (by scripts/setup.sh).

The *_pb2.py files here are build outputs of dev/compile_protos.py
and are never edited by hand or committed.
"""
