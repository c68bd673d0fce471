"""Command-line programs of gc_detection (run with `python -m gc_detection.cli.<name>`)."""
