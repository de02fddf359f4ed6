"""How large an encoded record the transport takes, and the error for one that is larger.

A runner whose transport limits the size of a record (Kafka: the producer's
``message.max.bytes``) gives the execution core a :class:`RecordLimit`; an output that
does not fit then fails to encode and follows the streamlet's error policy (stage
``encode``), like any other record that cannot be written, instead of failing the
transport later.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from streamlets.errors import StreamletsError

__all__ = ["NO_LIMIT", "RecordLimit", "RecordTooLarge"]

#: The room of a transport without a limit (the in-process runner).
NO_LIMIT = 2**62


class RecordTooLarge(StreamletsError):
    """An encoded record is larger than its topic takes."""


@dataclass(frozen=True, slots=True)
class RecordLimit:
    """The largest record a transport takes: ``max_bytes``, counted as ``overhead(key,
    headers)`` plus the value's length; ``setting`` names what raises it, for messages."""

    max_bytes: int
    overhead: Callable[[bytes | None, Sequence[tuple[str, bytes]]], int]
    setting: str

    def room(self, key: bytes | None, headers: Sequence[tuple[str, bytes]]) -> int:
        """How many bytes of value fit in a record with ``key`` and ``headers``."""
        return self.max_bytes - self.overhead(key, headers)

    def error(self, size: int, room: int, topic: str) -> RecordTooLarge:
        """The error for a value of ``size`` bytes where ``room`` fit, bound for ``topic``."""
        return RecordTooLarge(
            f"the encoded record is {size:,} bytes, too large for topic '{topic}': at most "
            f"{room:,} bytes fit ({self.setting} is {self.max_bytes:,}, less "
            f"{self.max_bytes - room:,} bytes of headers and framing); make the record "
            f"smaller, or raise {self.setting} (and the topic's max.message.bytes on the "
            "broker with it)"
        )
