"""The TF Model Garden (official.vision) adapter (filled by the Model Garden issue)."""
