"""Command-line tools of gc_detection (run with `python -m`)."""
