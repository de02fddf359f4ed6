"""Durations of windows, steps, gaps and grace periods, in milliseconds.

A duration is written with its unit, as in Kafka Streams' and Quix Streams' docs and the
blueprint examples: ``"500ms"``, ``"60s"``, ``"5m"``, ``"1h"``, ``"1d"``, or several parts
``"1m30s"``; in code also a :class:`datetime.timedelta`. A bare number is refused: it
would be a guess whether ``60`` means seconds or milliseconds.
"""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["Duration", "DurationError", "duration_ms", "format_ms"]

#: What a duration may be given as.
Duration = str | timedelta

_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_WHOLE = re.compile(r"\s*-?\s*(?:(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*)+")


class DurationError(ValueError):
    """A duration that does not parse (the message says what was given and how to write it)."""


def duration_ms(value: object, what: str = "duration") -> int:
    """``value`` (``"60s"``, ``"1m30s"``, a ``timedelta``) in whole milliseconds.

    Raises :class:`DurationError` for anything else: a bare number, an unknown unit, a
    fractional-millisecond value. A negative duration (``"-5s"``) parses: window types say
    that they refuse it.
    """
    if isinstance(value, timedelta):
        ms = value / timedelta(milliseconds=1)
        if ms != int(ms):
            raise DurationError(f"{what} {value} is not a whole number of milliseconds")
        return int(ms)
    if isinstance(value, bool | int | float):
        raise DurationError(
            f"{what} {value!r} has no unit; write it with one, e.g. '{value}s' or '{value}ms'"
        )
    if not isinstance(value, str):
        raise DurationError(
            f"{what} is {type(value).__name__} {value!r}; write a duration such as '60s'"
        )
    text = value.strip().lower()
    if not text or not _WHOLE.fullmatch(text):
        raise DurationError(
            f"{what} {value!r} is not a duration; write a number and a unit (ms, s, m, h, d), "
            "e.g. '60s', '5m' or '1m30s'"
        )
    total = 0.0
    for number, unit in _PART.findall(text):
        total += float(number) * _UNITS[unit]
    if text.startswith("-"):
        total = -total  # a negative duration parses; what takes it says whether it may be
    if total != int(total):
        raise DurationError(f"{what} {value!r} is not a whole number of milliseconds")
    return int(total)


def format_ms(ms: int) -> str:
    """``ms`` the way a duration is written (``60000`` -> ``'60s'``, ``90000`` -> ``'1m30s'``)."""
    if ms == 0:
        return "0s"
    sign = "-" if ms < 0 else ""
    left = abs(ms)
    parts = []
    for unit in ("d", "h", "m", "s", "ms"):
        size = _UNITS[unit]
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return sign + "".join(parts)
