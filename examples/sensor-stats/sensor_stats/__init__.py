"""The sensor-stats example: per-sensor minute windows of temperature readings, joined
with a table of sensor locations."""
