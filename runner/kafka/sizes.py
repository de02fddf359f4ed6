"""How large a record the producer takes: librdkafka's count against ``message.max.bytes``.

librdkafka refuses to produce a record whose value, key and headers, with 36 bytes of
framing, exceed ``message.max.bytes`` (``rd_kafka_msg_max_wire_size``); each header counts
its name and value with their zigzag-varint lengths. The broker has a limit of its own (a
topic's ``max.message.bytes``, default the broker's ``message.max.bytes``, 1,048,588 on
Kafka): keep the producer's at or below it, so that a record too large is found here,
where the error policy applies, and not by the broker (see
:class:`runner.kafka.producing.OutputProducer`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from runner.runtime.limits import RecordLimit

__all__ = [
    "DEFAULT_MESSAGE_MAX_BYTES",
    "MESSAGE_MAX_BYTES_SETTING",
    "message_max_bytes",
    "record_limit",
    "record_overhead",
]

#: librdkafka's default ``message.max.bytes``.
DEFAULT_MESSAGE_MAX_BYTES = 1_000_000
#: Bytes of framing librdkafka counts besides key, value and headers.
_FRAMING = 36
#: What a person changes to raise the limit.
MESSAGE_MAX_BYTES_SETTING = (
    "the producer's message.max.bytes (kafka.producer in the config file, or "
    "$STREAMLETS_KAFKA_PRODUCER_MESSAGE_MAX_BYTES)"
)


def _varint_size(n: int) -> int:
    """Bytes of the zigzag varint of ``n >= 0``."""
    z = n << 1
    size = 1
    while z >= 0x80:
        z >>= 7
        size += 1
    return size


def record_overhead(key: bytes | None, headers: Sequence[tuple[str, bytes]]) -> int:
    """Bytes a record counts against ``message.max.bytes`` besides its value."""
    size = _FRAMING + (len(key) if key else 0)
    for name, value in headers:
        n = len(name.encode())
        v = len(value) if value is not None else 0
        size += _varint_size(n) + n + _varint_size(v) + v
    return size


def message_max_bytes(config: Mapping[str, Any]) -> int:
    """The ``message.max.bytes`` of a producer config (librdkafka's default when unset)."""
    return int(config.get("message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES))


def record_limit(config: Mapping[str, Any]) -> RecordLimit:
    """The limit the execution core checks outputs against, for a producer ``config``."""
    return RecordLimit(message_max_bytes(config), record_overhead, MESSAGE_MAX_BYTES_SETTING)
