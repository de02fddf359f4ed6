"""The status file a streamlet process keeps up to date, read by ``flow run-local --kafka``.

It holds the process's state, counters and error, the port of its metrics, and how many
records it wrote that the broker acknowledged and how many input records its commits
covered (per blueprint topic). Those two are what this incarnation reported: a process
killed between a commit and its next report undercounts them, so the end of a run is
decided from the broker (:mod:`runner.kafka.completion`), not from these.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from runner.runtime.stats import StreamletStats

__all__ = ["ProcessStatus", "merge_status", "read_status", "write_status"]


@dataclass(slots=True)
class ProcessStatus:
    """What one streamlet process reports about itself."""

    streamlet: str
    replica: int
    pid: int = 0
    state: str = "starting"  # starting, running, draining, done, failed
    stats: StreamletStats = field(default_factory=StreamletStats)
    produced: dict[str, int] = field(default_factory=dict)  # acknowledged, per topic key
    committed: dict[str, int] = field(default_factory=dict)  # input records committed
    lag: dict[str, int] = field(default_factory=dict)  # as the broker reports it
    metrics_port: int | None = None
    error: str | None = None
    #: The process closed its windows for the end-of-input cue (runner.kafka.end_of_input).
    windows_closed: bool = False
    #: The latest failed records, newest last (runner.runtime.dead_letter_summary.error_entry).
    recent_errors: list[dict[str, Any]] = field(default_factory=list)
    #: Entries in the process's state stores, and its open windows (``None``: it has none).
    state_entries: int | None = None
    open_windows: int | None = None


def write_status(path: Path, status: ProcessStatus) -> None:
    """Replace the status file atomically (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = {f.name: getattr(status, f.name) for f in fields(status)}
    data["stats"] = status.stats.to_dict()
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def read_status(path: Path) -> ProcessStatus | None:
    """The last status written to ``path`` (``None`` when there is none yet)."""
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    known = set(ProcessStatus.__dataclass_fields__)
    values = {k: v for k, v in data.items() if k in known}
    values["stats"] = StreamletStats.from_dict(values.get("stats") or {})
    return ProcessStatus(**values)


def merge_status(total: ProcessStatus | None, extra: ProcessStatus) -> ProcessStatus:
    """``total`` (a new one for ``extra``'s replica when ``None``) with ``extra``'s
    counters, acknowledged outputs and committed inputs added; returns ``total``."""
    if total is None:
        total = ProcessStatus(extra.streamlet, extra.replica)
    total.stats.add(extra.stats)
    for key, n in extra.produced.items():
        total.produced[key] = total.produced.get(key, 0) + n
    for key, n in extra.committed.items():
        total.committed[key] = total.committed.get(key, 0) + n
    return total
