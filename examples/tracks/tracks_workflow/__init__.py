"""Per-animal movement summaries (distance, duration, speed) from GPS fixes."""
