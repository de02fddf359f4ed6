"""Event time, windows and aggregates (DESIGN §9): pure logic, no I/O.

``specs``
    The window types (:class:`Tumbling`, :class:`Hopping`, :class:`Sliding`,
    :class:`Session`): which windows a record belongs to and when a window closes.
``aggregates``
    What a window computes: :class:`Count`, :class:`Sum`, :class:`Mean`, :class:`Min`,
    :class:`Max`, :class:`First`, :class:`Last`, and :class:`Aggregate` for your own.
``window``
    :class:`Window`, declared on a streamlet class, and :class:`Windowed`, the result its
    ``on_close`` hook gets.
``engine``
    The windows of one window declaration in one partition: stream time, closing, late
    records, what is stored.
``durations``, ``fields``
    Durations (``"60s"``) and the input fields aggregates read.
"""

from __future__ import annotations

from streamlets.windows.aggregates import (
    Aggregate,
    Count,
    First,
    Last,
    Max,
    Mean,
    Min,
    Sum,
    WindowDefinitionError,
)
from streamlets.windows.durations import DurationError, duration_ms
from streamlets.windows.specs import Hopping, Session, Sliding, Tumbling, WindowSpec
from streamlets.windows.window import Window, Windowed

__all__ = [
    "Aggregate",
    "Count",
    "DurationError",
    "First",
    "Hopping",
    "Last",
    "Max",
    "Mean",
    "Min",
    "Session",
    "Sliding",
    "Sum",
    "Tumbling",
    "Window",
    "WindowDefinitionError",
    "WindowSpec",
    "Windowed",
    "duration_ms",
]
