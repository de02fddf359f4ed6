"""Where a run keeps its files (dead letters, status files, the embedded broker's log)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from blueprint import VerifiedBlueprint

__all__ = ["default_run_dir"]


def default_run_dir(blueprint: VerifiedBlueprint, base: Path | None = None) -> Path:
    """``runs/<app>-<timestamp>`` under ``base`` (default: the current directory)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return (base or Path.cwd()) / "runs" / f"{blueprint.name}-{stamp}"
