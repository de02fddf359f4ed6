"""Window types: which windows a record belongs to, and when a window closes.

The semantics are Kafka Streams' (its ``TimeWindows``, ``SlidingWindows`` and
``SessionWindows``), which Flink's tumbling, sliding and session windows share for
tumbling and hopping windows. Times are epoch milliseconds of event time.

**Stream time** of a partition is the highest event timestamp seen on it (Kafka Streams'
"observed stream time"; Flink's watermark with an out-of-orderness bound of ``grace``).
A window **closes** once stream time reaches its close time, and never takes a record
after that; a record that would only go to closed windows is **late**.

``Tumbling(size)``
    Windows ``[start, start + size)``, end exclusive, aligned to the epoch: a record at
    ``t`` is in the one window with ``start = t - t % size``. Closes when stream time
    ``>= end + grace`` (Kafka Streams: ``windowEnd <= streamTime - grace``).
``Hopping(size, step)``
    Windows ``[start, start + size)`` starting every ``step`` from the epoch (never before
    it, as in Kafka Streams): a record is in every window with ``start <= t < start +
    size``, ``size / step`` of them. Closes like a tumbling window.
``Sliding(size)``
    Kafka Streams' sliding windows (KIP-450): windows ``[start, start + size]``, **both
    ends inclusive**, one per distinct set of records: each record at ``t`` makes its
    *left* window ``[t - size, t]``, and a record's *right* window ``[t + 1, t + 1 + size]``
    exists while it holds a record. Closes when stream time ``> end + grace``.
``Session(gap)``
    A session holds records of one key no more than ``gap`` apart; its bounds are its
    first and last record's timestamps, both inclusive. A record within ``gap`` of a
    session (inclusive) joins it, and one within ``gap`` of two merges them. Closes when
    stream time ``> end + gap + grace``: no record can extend it any more (Kafka Streams'
    close time for sessions, ``end < streamTime - gap - grace``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from streamlets.windows.durations import Duration, DurationError, duration_ms, format_ms

__all__ = ["Hopping", "Session", "Sliding", "Tumbling", "WindowSpec"]


def _positive(value: Duration, what: str) -> int:
    ms = duration_ms(value, what)
    if ms <= 0:
        raise DurationError(f"{what} is {format_ms(ms)}; it must be longer than 0")
    return ms


def _grace(value: Duration) -> int:
    ms = duration_ms(value, "grace")
    if ms < 0:
        raise DurationError(f"grace is {format_ms(ms)}; it must be 0 or more")
    return ms


@dataclass(frozen=True, slots=True, init=False)
class WindowSpec:
    """What every window type has: its ``grace`` (milliseconds a window stays open after
    its end, for records that arrive late)."""

    kind: ClassVar[str] = ""
    grace: int

    def close_time(self, start: int, end: int) -> int:
        """The stream time at which window ``[start, end]`` closes."""
        raise NotImplementedError  # pragma: no cover - every window type overrides it

    def describe(self) -> str:
        """The spec as it is written: ``tumbling 1m, grace 5s``."""
        raise NotImplementedError  # pragma: no cover


@dataclass(frozen=True, slots=True, init=False)
class Hopping(WindowSpec):
    """Windows of ``size`` starting every ``step`` (see the module docstring)."""

    kind: ClassVar[str] = "hopping"
    size: int
    step: int

    def __init__(self, size: Duration, step: Duration, *, grace: Duration = "0s") -> None:
        size_ms = _positive(size, "size")
        step_ms = _positive(step, "step")
        if step_ms > size_ms:
            raise DurationError(
                f"step {format_ms(step_ms)} is longer than size {format_ms(size_ms)}: records "
                "between the windows would belong to none; make the step at most the size"
            )
        object.__setattr__(self, "size", size_ms)
        object.__setattr__(self, "step", step_ms)
        object.__setattr__(self, "grace", _grace(grace))

    def starts(self, t: int) -> range:
        """The starts of the windows a record at ``t`` belongs to, the latest first."""
        last = t - t % self.step
        first = max(t - self.size + 1, 0)
        return range(last, first - 1, -self.step)

    def last_end(self, t: int) -> int:
        """The end of the latest window a record at ``t`` belongs to."""
        return t - t % self.step + self.size

    def close_time(self, start: int, end: int) -> int:
        """``end + grace`` (``end`` is exclusive)."""
        return end + self.grace

    def describe(self) -> str:
        """``hopping 5m every 1m, grace 10s``."""
        return f"hopping {format_ms(self.size)} every {format_ms(self.step)}" + _grace_text(self)


@dataclass(frozen=True, slots=True, init=False)
class Tumbling(Hopping):
    """Back-to-back windows of ``size`` (a hopping window whose step is its size)."""

    kind: ClassVar[str] = "tumbling"

    def __init__(self, size: Duration, *, grace: Duration = "0s") -> None:
        size_ms = _positive(size, "size")
        object.__setattr__(self, "size", size_ms)
        object.__setattr__(self, "step", size_ms)
        object.__setattr__(self, "grace", _grace(grace))

    def describe(self) -> str:
        """``tumbling 1m, grace 5s``."""
        return f"tumbling {format_ms(self.size)}" + _grace_text(self)


@dataclass(frozen=True, slots=True, init=False)
class Sliding(WindowSpec):
    """Kafka Streams' sliding windows of ``size`` (see the module docstring)."""

    kind: ClassVar[str] = "sliding"
    size: int

    def __init__(self, size: Duration, *, grace: Duration = "0s") -> None:
        object.__setattr__(self, "size", _positive(size, "size"))
        object.__setattr__(self, "grace", _grace(grace))

    def close_time(self, start: int, end: int) -> int:
        """``end + 1 + grace`` (``end`` is inclusive)."""
        return end + 1 + self.grace

    def describe(self) -> str:
        """``sliding 1m, grace 5s``."""
        return f"sliding {format_ms(self.size)}" + _grace_text(self)


@dataclass(frozen=True, slots=True, init=False)
class Session(WindowSpec):
    """Sessions of records no more than ``gap`` apart (see the module docstring)."""

    kind: ClassVar[str] = "session"
    gap: int

    def __init__(self, gap: Duration, *, grace: Duration = "0s") -> None:
        object.__setattr__(self, "gap", _positive(gap, "gap"))
        object.__setattr__(self, "grace", _grace(grace))

    def close_time(self, start: int, end: int) -> int:
        """``end + gap + 1 + grace`` (``end``, the last record's time, is inclusive)."""
        return end + self.gap + 1 + self.grace

    def describe(self) -> str:
        """``session gap 30m, grace 1m``."""
        return f"session gap {format_ms(self.gap)}" + _grace_text(self)


def _grace_text(spec: WindowSpec) -> str:
    return f", grace {format_ms(spec.grace)}" if spec.grace else ""
