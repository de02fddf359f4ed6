"""The live view's reading of an in-process run (``flow run-local --ui``): the runner's own
counters (the ones its terminal table shows), each replica's phase, and the latest errors
and dead letters it keeps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runner.local import LocalRunner
from runner.runtime.messages import DeadLetter
from runner.ui.view import Reading, StreamletReading, errors_of

__all__ = ["LocalSource"]

#: Tries at a reading that met the runner changing what it read (it runs on another thread).
_TRIES = 5


class LocalSource:
    """Reads ``runner`` (from the view's thread, while the runner runs on its own)."""

    mode = "local"

    def __init__(self, runner: LocalRunner) -> None:
        self.runner = runner
        self.run = "running"
        self.error: str | None = None

    def finished(self, run: str, error: str | None = None) -> None:
        """The run has ended: ``finished``, ``failed`` or ``stopped``."""
        self.error = error
        self.run = run

    def read(self) -> Reading:
        """The counters, phases, state sizes and topic counts now."""
        for attempt in range(_TRIES):
            try:
                return self._read()
            except RuntimeError:  # a dict changed size while it was read: again
                if attempt == _TRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _read(self) -> Reading:
        runner = self.runner
        stats = runner.snapshot()
        entries: dict[str, int | None] = {}
        windows: dict[str, int | None] = {}
        for executor in list(runner.executors):
            name = executor.name
            if executor.state is not None:
                n = executor.state.entries()
                entries[name] = None if n is None else (entries.get(name) or 0) + n
            if executor.windows is not None:
                windows[name] = (windows.get(name) or 0) + executor.windows.open_windows()
        streamlets = {
            name: StreamletReading(
                stats=stats[name],
                replicas=list(runner.phases[name]),
                state_entries=entries.get(name),
                open_windows=windows.get(name),
            )
            for name in runner.blueprint.streamlets
        }
        topics: dict[str, int | None] = dict(runner.topic_records())
        for key in runner.blueprint.topics:
            topics.setdefault(key, 0)
        return Reading(streamlets, topics, self.run, self.error)

    def errors(self, streamlet: str) -> list[dict[str, Any]]:
        """The latest failed records of ``streamlet`` and what ended a replica of it."""
        recent: list[DeadLetter] = []
        for executor in list(self.runner.executors):
            if executor.name == streamlet:
                recent.extend(list(executor.recent_errors))
        return errors_of(recent, self.runner.failures.get(streamlet), self.runner.blueprint)

    def dead_letters(self, streamlet: str) -> Sequence[DeadLetter]:
        """The latest dead letters of ``streamlet``."""
        return list(self.runner.recent_dead_letters.get(streamlet, ()))
