"""Timers: streamlet methods the runner calls every N seconds of wall-clock time (DESIGN §9).

::

    class Summary(Streamlet):
        readings = Inlet(Reading)
        summaries = Outlet(Summary)

        def process(self, reading: Reading) -> None:
            self.seen += 1

        @timer(seconds=10)
        def report(self) -> Summary:
            return Summary(seen=self.seen, at=datetime.now(UTC))

A timer returns what a handler returns (``None``, a record, ``outlet.emit(...)``, an
iterable of those; ``async def`` is allowed), and its records go out as a handler's do,
without a key unless the outlet declares one or the record is emitted with one, stamped
with the time they are produced. Both runners call timers between batches of records, on
the thread that calls ``process()``, so a timer and a handler never run at once; a timer
is late by at most the time a batch takes (on Kafka also the poll timeout, 0.1 s by
default). A timer that is due again while it is still behind is called once, not once
per missed period. A timer that raises follows the error policy with stage ``timer``.
Timers run from the first record's readiness (after ``setup()``) until the instance stops
or its input ends.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

from streamlets.errors import StreamletDefinitionError

__all__ = ["TIMER_ATTRIBUTE", "timer"]

F = TypeVar("F", bound=Callable[..., Any])

#: The attribute that marks a method as a timer; its value is the period in seconds.
TIMER_ATTRIBUTE = "__streamlets_timer__"


def timer(*, seconds: float) -> Callable[[F], F]:
    """Mark a streamlet method to be called every ``seconds`` of wall-clock time."""
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or seconds <= 0
    ):
        raise StreamletDefinitionError(
            f"@timer(seconds=...) is a number of seconds above 0; got {seconds!r}"
        )

    def mark(func: F) -> F:
        if not callable(func):
            raise StreamletDefinitionError(f"@timer decorates a method; got {func!r}")
        setattr(func, TIMER_ATTRIBUTE, float(seconds))
        return func

    return mark
