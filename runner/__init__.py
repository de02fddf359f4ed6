"""Runners: everything with side effects (the command line, local, Kafka and Kubernetes)."""
