"""The ``flow`` command line: one module per command group, shared options in ``common``."""

from __future__ import annotations

from runner.cli.main import cli, main

__all__ = ["cli", "main"]
