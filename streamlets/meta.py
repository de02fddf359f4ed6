"""What a record carries besides its value: key, event timestamp, headers, and where it was
read (DESIGN §3.5).

A handler that takes a second parameter gets the record's :class:`Meta`::

    def process(self, reading: Reading, meta: Meta) -> Alert | None:
        ...  # meta.key, meta.timestamp, meta.headers["traceparent"], meta.partition
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

__all__ = ["Meta", "from_epoch_ms", "to_epoch_ms"]

_EMPTY: Mapping[str, bytes] = MappingProxyType({})


def from_epoch_ms(ms: int) -> datetime:
    """An aware UTC datetime for epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, UTC)


def to_epoch_ms(when: datetime) -> int:
    """Epoch milliseconds of ``when`` (a naive datetime is taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Meta:
    """A record's key, event timestamp, user headers and position.

    ``raw_key`` is the key's bytes (``None``: a keyless record) and :attr:`key` the same as
    UTF-8 text; ``timestamp_ms`` is the event time in epoch milliseconds (the inlet's
    ``timestamp=`` field, else the record's own timestamp) and :attr:`timestamp` the same as
    an aware UTC datetime. ``headers`` holds the record's headers without the framework's
    own (the last value of a repeated header). ``topic`` is the blueprint topic, and
    ``partition`` and ``offset`` where the record was read (-1 when unknown).
    """

    raw_key: bytes | None = None
    timestamp_ms: int = 0
    headers: Mapping[str, bytes] = field(default_factory=lambda: _EMPTY)
    topic: str = ""
    partition: int = -1
    offset: int = -1

    @property
    def key(self) -> str | None:
        """The key as text (UTF-8; undecodable bytes replaced), ``None`` when keyless."""
        raw = self.raw_key
        return None if raw is None else raw.decode("utf-8", "replace")

    @property
    def timestamp(self) -> datetime:
        """The event time as an aware UTC datetime."""
        return from_epoch_ms(self.timestamp_ms)
