"""Live progress while a pipeline runs, and the summary table when it ends.

On a terminal a rich table refreshes in place; otherwise a plain line per streamlet is
logged every few seconds, so CI logs and files stay readable.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Mapping
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table

from runner.runtime.stats import StreamletStats

__all__ = ["ActivityClock", "Progress", "summary_table"]

Snapshot = Callable[[], Mapping[str, StreamletStats]]


def _rate(now: int, before: int, seconds: float) -> float:
    return (now - before) / seconds if seconds > 0 else 0.0


class ActivityClock:
    """How long each streamlet was moving records, from the counters as they are sampled
    (``observe``): from the last look before its first record to the look at which its
    counters last changed. A run on Kafka spends seconds joining consumer groups before
    the first record moves; a rate over the whole run would count them.
    """

    def __init__(self) -> None:
        self._moved: dict[str, int] = {}
        self._first: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._previous: float | None = None

    def observe(self, stats: Mapping[str, StreamletStats], now: float) -> None:
        """Take a sample of the counters, taken at ``now`` (monotonic seconds)."""
        before = self._previous if self._previous is not None else now
        for name, s in stats.items():
            moved = max(s.records_in, s.records_out + s.errors)
            if moved > self._moved.get(name, 0):
                self._first.setdefault(name, before)
                self._last[name] = now
                self._moved[name] = moved
        self._previous = now

    def seconds(self) -> dict[str, float]:
        """Per streamlet that moved records: the seconds it did."""
        return {name: self._last[name] - first for name, first in self._first.items()}


def summary_table(
    stats: Mapping[str, StreamletStats],
    duration: float,
    title: str = "summary",
    *,
    active: Mapping[str, float] | None = None,
) -> Table:
    """A table of records in/out, errors and average rate per streamlet: over ``duration``,
    or over the seconds each streamlet was moving records (``active``, see
    :class:`ActivityClock`)."""
    table = Table(title=title, title_justify="left")
    table.add_column("streamlet")
    table.add_column("in", justify="right")
    table.add_column("out", justify="right")
    table.add_column("errors", justify="right")
    table.add_column("dead letters", justify="right")
    table.add_column("records/s", justify="right")
    for name, s in stats.items():
        moved = max(s.records_in, s.records_out)
        seconds = duration if active is None else active.get(name, 0.0)
        table.add_row(
            name,
            f"{s.records_in:,}",
            f"{s.records_out:,}",
            f"{s.errors:,}",
            f"{s.dead_lettered:,}",
            f"{moved / seconds:,.0f}" if seconds > 0 else "-",
        )
    if active is not None:
        table.caption = "records/s: while each streamlet was moving records"
        table.caption_justify = "left"
    return table


class Progress:
    """Shows counters from ``snapshot`` every ``interval`` seconds until stopped."""

    def __init__(
        self,
        snapshot: Snapshot,
        *,
        live: bool | None = None,
        interval: float | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.interval = interval if interval is not None else (0.5 if self.live else 5.0)
        self.console = Console(file=self.stream, force_terminal=self.live or None)
        self._last: dict[str, StreamletStats] = {}
        self._last_time = time.monotonic()

    def _table(self) -> Table:
        now = time.monotonic()
        seconds = now - self._last_time
        current = self.snapshot()
        table = Table(title="running", title_justify="left")
        for column in ("streamlet", "in", "out", "errors", "in/s", "out/s"):
            table.add_column(column, justify="left" if column == "streamlet" else "right")
        for name, s in current.items():
            before = self._last.get(name, StreamletStats())
            table.add_row(
                name,
                f"{s.records_in:,}",
                f"{s.records_out:,}",
                f"{s.errors:,}",
                f"{_rate(s.records_in, before.records_in, seconds):,.0f}",
                f"{_rate(s.records_out, before.records_out, seconds):,.0f}",
            )
        self._last = {k: _copy(v) for k, v in current.items()}
        self._last_time = now
        return table

    def _line(self) -> str:
        now = time.monotonic()
        seconds = now - self._last_time
        current = self.snapshot()
        parts = []
        for name, s in current.items():
            before = self._last.get(name, StreamletStats())
            rate = _rate(
                max(s.records_in, s.records_out),
                max(before.records_in, before.records_out),
                seconds,
            )
            parts.append(
                f"{name}: in={s.records_in} out={s.records_out} errors={s.errors} ({rate:,.0f}/s)"
            )
        self._last = {k: _copy(v) for k, v in current.items()}
        self._last_time = now
        return "progress | " + " | ".join(parts)

    async def run(self) -> None:
        """Refresh until cancelled."""
        if self.live:
            with Live(
                self._table(), console=self.console, refresh_per_second=4, transient=True
            ) as live:
                while True:
                    await asyncio.sleep(self.interval)
                    live.update(self._table())
        else:
            while True:
                await asyncio.sleep(self.interval)
                print(self._line(), file=self.stream, flush=True)


def _copy(s: StreamletStats) -> StreamletStats:
    return StreamletStats(records_in=s.records_in, records_out=s.records_out, errors=s.errors)
