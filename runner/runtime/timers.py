"""The timers of one streamlet instance (``@timer(seconds=N)``, see
:mod:`streamlets.timers`): when each is due, and its results as outputs.

Both runners ask :meth:`Timers.wait` how long they may wait for input before a timer is
due, and call :meth:`Timers.run_due` between batches: the in-process runner from a task of
the instance, the Kafka runner from its consume loop (and its source pump's tick). What a
timer returns is routed and encoded by the instance's executor as a handler's result is,
without an input to inherit from; a timer that raises follows the error policy with
stage ``timer``.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from runner.runtime.errors import StreamletFailed
from runner.runtime.executor import Executor
from runner.runtime.messages import DeadLetter, Emitted, Message

__all__ = ["Timers"]


class Timers:
    """The timers of ``executor``'s instance; ``clock`` is monotonic seconds."""

    def __init__(self, executor: Executor, clock: Callable[[], float] = time.monotonic) -> None:
        self.executor = executor
        self.clock = clock
        instance = executor.instance
        now = clock()
        self._timers: list[tuple[str, float, Callable[[], Any]]] = [
            (name, period, getattr(instance, name))
            for name, period in type(instance).timers().items()
        ]
        self._due = {name: now + period for name, period, _ in self._timers}

    def __bool__(self) -> bool:
        return bool(self._timers)

    def wait(self) -> float:
        """Seconds until the next timer is due (0 when one is)."""
        if not self._due:
            return float("inf")
        return max(min(self._due.values()) - self.clock(), 0.0)

    def due(self) -> bool:
        """Whether a timer is due."""
        return bool(self._due) and min(self._due.values()) <= self.clock()

    async def run_due(self) -> tuple[list[Emitted], list[DeadLetter]]:
        """Call every timer that is due; their outputs and dead letters."""
        out: list[Emitted] = []
        dead: list[DeadLetter] = []
        now = self.clock()
        executor = self.executor
        for name, period, method in self._timers:
            if self._due[name] > now:
                continue
            # The next call one period after this one was due; a timer far behind (a long
            # batch) is called once, not once for every period it missed.
            due = self._due[name] + period
            self._due[name] = due if due > now else now + period
            original = Message(f"timer {name}".encode())
            try:
                result = method()
                if inspect.isawaitable(result):
                    result = await result
                elif inspect.isasyncgen(result):
                    result = [item async for item in result]
                if isinstance(result, AsyncIterator):
                    result = [item async for item in result]
            except StreamletFailed:
                raise
            except Exception as exc:
                executor.reject("timer", exc, original, dead)
                continue
            executor.emit_result(result, "timer", original, out, dead)
        return out, dead
