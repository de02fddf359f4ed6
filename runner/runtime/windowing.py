"""The windows of one streamlet instance at run time: engines per window and partition,
kept in the instance's :class:`~runner.runtime.state.StateManager`.

Each window of the streamlet (:class:`streamlets.windows.Window`) has an engine per input
partition (:mod:`streamlets.windows.engine`: stream time, open windows, closing), made
when a record of that partition first comes and filled from what the window's state holds
there, so a restarted or rebalanced instance goes on where the partition's state left
off. What the engines change is written to the manager once per batch
(:meth:`WindowRuntime.flush`): a window that takes a thousand records in a batch is
encoded once, and on Kafka its changelog gets one entry. When the manager restores or
closes a partition, its engines are dropped and made again from the state.

For a record, :meth:`WindowRuntime.plan` asks every window of its inlet what the record
does (running the aggregates, which may raise: the record then fails and changes
nothing), and :meth:`WindowRuntime.apply` does it, giving the windows to emit; the
executor turns those into outputs (key: the window's key, timestamp: its end).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runner.runtime.state import StateManager
from streamlets.errors import StreamletsError
from streamlets.meta import from_epoch_ms
from streamlets.schema import Schema
from streamlets.state import StateError
from streamlets.windows.engine import Engine, WindowOutput
from streamlets.windows.window import BoundWindow, Window, Windowed

__all__ = ["LateRecord", "WindowResult", "WindowRuntime", "WindowStep"]

log = logging.getLogger("streamlets.runner")


class LateRecord(StreamletsError):
    """A record that came after every window it belongs to had closed (the error of its
    dead letter, stage ``late``)."""


@dataclass(frozen=True, slots=True)
class WindowResult:
    """A window to emit: the window declaration it is of, and the engine's output."""

    window: BoundWindow
    output: WindowOutput

    def windowed(self) -> Windowed[Any]:
        """The :class:`Windowed` an ``on_close`` hook gets (runs the aggregate's result
        function, which may raise)."""
        out = self.output
        value = self.window.aggregate.result(out.acc)
        return Windowed(self.window.name, out.key, out.start, out.end, value, out.final)


@dataclass(slots=True)
class WindowStep:
    """What one record does to the windows of its inlet (see :meth:`WindowRuntime.plan`)."""

    partition: int
    plans: list[tuple[BoundWindow, Engine, Any]] = field(default_factory=list)
    #: the windows the record came too late for, with their stream time
    late: list[tuple[BoundWindow, int, int]] = field(default_factory=list)


class WindowRuntime:
    """The windows of ``instance``, whose inlets have the schemas ``inlet_schemas``, kept in
    ``manager``."""

    def __init__(
        self,
        instance: Any,
        windows: Mapping[str, Window[Any]],
        inlet_schemas: Mapping[str, Schema],
        manager: StateManager,
    ) -> None:
        self.manager = manager
        self.windows: dict[str, BoundWindow] = {}
        self.by_inlet: dict[str, list[BoundWindow]] = {}
        inlets = type(instance).inlets()
        for name, window in windows.items():
            inlet = window.inlet_name(inlets) or ""
            bound = window.resolve(instance, inlet_schemas[inlet])
            self.windows[name] = bound
            self.by_inlet.setdefault(inlet, []).append(bound)
        self._engines: dict[tuple[str, int], Engine] = {}
        self._touched: set[tuple[str, int]] = set()
        manager.on_reset(self._reset)

    @property
    def inlets(self) -> Mapping[str, list[BoundWindow]]:
        """The windows of each inlet that has some."""
        return self.by_inlet

    # -- engines --------------------------------------------------------------------------

    def engine(self, window: BoundWindow, partition: int) -> Engine:
        """The engine of ``window`` in ``partition``, made from its stored state on first use."""
        slot = (window.name, partition)
        engine = self._engines.get(slot)
        if engine is None:
            engine = window.engine()
            engine.load(self.manager.items(window.name, partition))
            self._engines[slot] = engine
        return engine

    def open_windows(self) -> int:
        """How many windows are open (over every key and partition loaded so far)."""
        return sum(
            len(starts)
            for engine in list(self._engines.values())
            for starts in list(engine.windows.values())
        )

    def _reset(self, partition: int) -> None:
        for slot in [s for s in self._engines if s[1] == partition]:
            del self._engines[slot]
            self._touched.discard(slot)

    # -- records --------------------------------------------------------------------------

    def plan(
        self, inlet: str, record: Any, key: bytes | None, partition: int, event_time: int
    ) -> WindowStep:
        """What ``record`` (with record key ``key`` and event time ``event_time``, from
        ``partition``) does to the windows of ``inlet``. Raises what an aggregate raises,
        and :class:`~streamlets.state.StateError` for a record without a key."""
        step = WindowStep(partition if partition >= 0 else 0)
        for window in self.by_inlet[inlet]:
            window_key = window.key_of(record, key)
            if window_key is None:
                raise StateError(
                    f"window '{window.name}' needs a key for each record, and this record has "
                    "none; key the records of the input topic (Outlet(Schema, key='field') on "
                    "the producer, or emit(record, key=...)), or give the window a key field "
                    "(Window(..., key='field'))"
                )
            t = window.time_of(record, event_time)
            engine = self.engine(window, step.partition)
            planned = engine.plan(window_key, t, record)
            if planned is None:
                stream = engine.stream if engine.stream is not None else t
                step.late.append((window, t, stream))
            else:
                step.plans.append((window, engine, planned))
        return step

    def apply(self, step: WindowStep) -> list[WindowResult]:
        """Do what :meth:`plan` planned; the windows to emit, in order."""
        results: list[WindowResult] = []
        for window, engine, planned in step.plans:
            self._touched.add((window.name, step.partition))
            self._results(window, engine.apply(planned), results)
        return results

    def _results(
        self, window: BoundWindow, outputs: Iterable[WindowOutput], results: list[WindowResult]
    ) -> None:
        results.extend(WindowResult(window, out) for out in outputs)

    def close_all(self, partitions: Iterable[int] | None = None) -> list[WindowResult]:
        """Close every open window (the input has ended) of ``partitions`` (the ones this
        instance owns), or of every partition it has engines or stores for; their final
        results."""
        if partitions is None:
            known = {p for _, p in self._engines} | set(self.manager.partitions)
        else:
            known = set(partitions)
        results: list[WindowResult] = []
        for partition in sorted(known):
            for window in self.windows.values():
                engine = self.engine(window, partition)
                if engine.open_windows:
                    self._touched.add((window.name, partition))
                    self._results(window, engine.close_all(), results)
        return results

    def flush(self) -> None:
        """Write what the engines changed since the last flush to the state manager."""
        touched, self._touched = self._touched, set()
        for name, partition in touched:
            engine = self._engines.get((name, partition))
            if engine is None:
                continue
            changes = engine.take_changes()
            if changes:
                self.manager.put(name, partition, changes)

    def late_message(self, window: BoundWindow, t: int, stream: int) -> str:
        """Why a record at ``t`` is late for ``window`` (stream time ``stream``)."""
        return (
            f"the record at {_when(t)} is late for window '{window.name}' "
            f"({window.spec.describe()}): stream time of its partition is {_when(stream)}, "
            "and every window it belongs to has closed; raise the window's grace to take "
            "records this late"
        )


def _when(ms: int) -> str:
    return from_epoch_ms(ms).isoformat(timespec="milliseconds")
