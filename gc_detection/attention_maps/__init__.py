"""Attention maps of the module, whatever framework built the model: the per-image
record, pictures and output files (each adapter loads its own models)."""
