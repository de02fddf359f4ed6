"""The fraud-counters example: per-card daily spending kept as keyed state."""
