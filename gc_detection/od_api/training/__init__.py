"""Training helpers that are plain TensorFlow (no OD API imports)."""
