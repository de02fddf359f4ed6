"""The in-process runner: a verified blueprint on asyncio, topics as bounded channels."""

from __future__ import annotations

from runner.local.pipeline import LocalRunner, RunResult

__all__ = ["LocalRunner", "RunResult"]
