"""The live view's reading of ``flow run-local --kafka``: what the supervisor knows of its
processes (their status files, their exits and restarts), the consumer lag it reads from
the broker, and the dead letters it reads back from the dead-letter topics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runner.kafka.supervisor import Supervisor
from runner.runtime.messages import DeadLetter
from runner.runtime.stats import StreamletStats
from runner.ui.view import Reading, StreamletReading

__all__ = ["KafkaSource"]


def _add(total: int | None, n: int | None) -> int | None:
    if n is None:
        return total
    return (total or 0) + n


class KafkaSource:
    """Reads ``supervisor`` (from the view's thread)."""

    mode = "kafka"

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.run: str | None = None
        self.error: str | None = None

    def finished(self, run: str, error: str | None = None) -> None:
        """The run has ended: ``finished``, ``failed`` or ``stopped``."""
        self.error = error
        self.run = run

    def read(self) -> Reading:
        """Counters, each replica's health, lag, state sizes and topic counts now."""
        sup = self.supervisor
        children = list(sup.children)
        statuses = sup.statuses() if children else []
        streamlets = {
            name: StreamletReading(StreamletStats(), []) for name in sup.blueprint.streamlets
        }
        topics: dict[str, int | None] = dict.fromkeys(sup.blueprint.topics, 0)
        for child, status in zip(children, statuses, strict=False):
            item = streamlets[child.streamlet]
            item.stats.add(status.stats)
            item.replicas.append(sup.health(child))
            live = child.last if child.process is not None else None
            if live is not None:
                item.state_entries = _add(item.state_entries, live.state_entries)
                item.open_windows = _add(item.open_windows, live.open_windows)
            for key, n in status.produced.items():
                if key in topics:
                    topics[key] = (topics[key] or 0) + n
        for name, spec in sup.blueprint.streamlets.items():
            if not streamlets[name].replicas:
                streamlets[name].replicas = ["starting"] * spec.replicas
        for (streamlet, _topic), n in sup.lag().items():
            if streamlet in streamlets:
                streamlets[streamlet].lag = (streamlets[streamlet].lag or 0) + n
        run = self.run or ("failed" if sup.error else "stopped" if sup.stopped else "running")
        return Reading(streamlets, topics, run, self.error or sup.error)

    def errors(self, streamlet: str) -> list[dict[str, Any]]:
        """Each replica's latest failed records and what ended a process of it."""
        entries: list[dict[str, Any]] = []
        for child in list(self.supervisor.children):
            if child.streamlet != streamlet:
                continue
            status = child.last
            failure = (status.error if status is not None else None) or child.last_error
            if failure:
                entries.append(
                    {
                        "stage": "run",
                        "error_class": "",
                        "message": f"{child.label}: {failure}",
                        "where": None,
                        "inlet": None,
                        "topic": None,
                        "partition": -1,
                        "offset": -1,
                    }
                )
            recent = status.recent_errors if status is not None else child.recent_errors
            entries.extend(reversed(recent))
        return entries[:10]

    def dead_letters(self, streamlet: str) -> Sequence[DeadLetter]:
        """The latest dead letters of ``streamlet`` read back from its dead-letter topic."""
        return list(self.supervisor.recent_dead_letters.get(streamlet, ()))
