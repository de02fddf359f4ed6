"""The sensor-alerts example application."""
