"""The values a runner moves between topics: encoded messages, routed outputs, dead letters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DeadLetter", "Emitted", "Message"]


# Message and Emitted are made for every record on every hop: plain (not frozen) slotted
# dataclasses cost a quarter of frozen ones to create. Treat them as values all the same.
@dataclass(slots=True)
class Message:
    """An encoded record on a topic: value, key, headers, where it came from (when known)
    and its timestamp in epoch milliseconds (-1: none yet; the transport stamps it).

    A ``value`` of ``None`` is a tombstone: it deletes its key from a table (and, in
    time, from a compacted topic).
    """

    value: bytes | None
    key: bytes | None = None
    # A tuple, or the list the Kafka consumer gave (kept as it is: it goes out again as is).
    headers: Sequence[tuple[str, bytes]] = ()
    topic: str = ""
    partition: int = -1
    offset: int = -1
    timestamp: int = -1

    def header(self, name: str) -> bytes | None:
        """The value of header ``name`` (the last one when repeated), or ``None``."""
        found = None
        for key, value in self.headers:
            if key == name:
                found = value
        return found


@dataclass(slots=True)
class Emitted:
    """An encoded output bound for one topic (by blueprint topic key)."""

    topic: str
    message: Message


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that failed, with everything needed to find out why and replay it."""

    streamlet: str
    stage: str  # "decode", "validate", "process" or "encode"
    error_class: str
    error_message: str
    stack_trace: str
    original: Message
    inlet: str | None = None
    #: The original value was cut to fit the dead-letter topic (``original.value`` is its
    #: start only); the whole record is where ``original``'s topic and offset say.
    value_truncated: bool = False

    def as_json(self) -> dict[str, Any]:
        """A JSON-able description: the original value, key and header values as text when
        they are UTF-8, else hex (``value_encoding``/``key_encoding`` say which; a header
        that is not UTF-8 is written as ``hex:...``); a tombstone's value is ``null``."""
        value, encoding = (
            _text(self.original.value) if self.original.value is not None else (None, None)
        )
        key, key_encoding = (
            _text(self.original.key) if self.original.key is not None else (None, None)
        )
        headers = {}
        for name, raw in self.original.headers:
            text, kind = _text(raw)
            headers[name] = text if kind == "utf-8" else f"hex:{text}"
        return {
            "streamlet": self.streamlet,
            "inlet": self.inlet,
            "stage": self.stage,
            "error_class": self.error_class,
            "error_message": self.error_message,
            "topic": self.original.topic,
            "partition": self.original.partition,
            "offset": self.original.offset,
            "timestamp": self.original.timestamp,
            "key": key,
            "key_encoding": key_encoding,
            "headers": headers,
            "value": value,
            "value_encoding": encoding,
            "stack_trace": self.stack_trace,
            **({"value_truncated": True} if self.value_truncated else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeadLetter:
        """The dead letter :meth:`as_json` described (a line of a run's
        ``dead-letters.jsonl``). Raises ``ValueError`` (or ``KeyError``) for data that is not
        one."""
        headers = tuple(
            (str(name), _header_bytes(str(text)))
            for name, text in dict(data.get("headers") or {}).items()
        )
        key = data.get("key")
        original = Message(
            _bytes(str(data["value"]), str(data.get("value_encoding") or "utf-8")),
            None if key is None else _bytes(str(key), str(data.get("key_encoding") or "utf-8")),
            headers,
            str(data.get("topic") or ""),
            int(data.get("partition", -1)),
            int(data.get("offset", -1)),
            int(data.get("timestamp", -1)),
        )
        return cls(
            streamlet=str(data["streamlet"]),
            stage=str(data["stage"]),
            error_class=str(data.get("error_class") or ""),
            error_message=str(data.get("error_message") or ""),
            stack_trace=str(data.get("stack_trace") or ""),
            original=original,
            inlet=data.get("inlet"),
            value_truncated=bool(data.get("value_truncated", False)),
        )


def _bytes(text: str, encoding: str) -> bytes:
    return bytes.fromhex(text) if encoding == "hex" else text.encode("utf-8")


def _header_bytes(text: str) -> bytes:
    return bytes.fromhex(text[4:]) if text.startswith("hex:") else text.encode("utf-8")


def _text(data: bytes) -> tuple[str, str]:
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.hex(), "hex"
