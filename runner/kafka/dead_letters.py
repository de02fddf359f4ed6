"""Dead letters on Kafka: the original record plus headers that say what went wrong.

The headers follow Kafka Connect's dead-letter-queue convention (``__connect.errors.*``),
so tools that read a Connect DLQ read ours; ``__streamlets.errors.*`` adds what Connect
has no name for. The record keeps its original key, value and headers, so it can be
replayed as it was - unless that would make it too large for the producer: then
:func:`fit_dead_letter` cuts the value to what fits and says so in the headers (the
original is still where ``__connect.errors.topic``, ``.partition`` and ``.offset`` say).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from runner.runtime.messages import DeadLetter, Message

__all__ = [
    "HEADERS_DROPPED_HEADER",
    "HEADER_PREFIX",
    "TRUNCATED_HEADER",
    "VALUE_SIZE_HEADER",
    "dead_letter_from_record",
    "dead_letter_headers",
    "fit_dead_letter",
    "read_dead_letter_headers",
]

HEADER_PREFIX = "__connect.errors."
_MAX_TRACE = 16_000  # bytes of stack trace kept in a header
#: Header of a dead letter whose value was cut to fit: how many bytes of it were kept.
TRUNCATED_HEADER = "__streamlets.errors.value.truncated"
#: Header of a dead letter whose value was cut to fit: the original value's size in bytes.
VALUE_SIZE_HEADER = "__streamlets.errors.value.size"
#: Header of a dead letter that had to leave out the original record's headers: how many.
HEADERS_DROPPED_HEADER = "__streamlets.errors.headers.dropped"
_SHORT_TEXT = 1_000  # bytes of error message and stack trace kept when even they do not fit


def dead_letter_headers(dead: DeadLetter, *, app: str, replica: int = 0) -> list[tuple[str, bytes]]:
    """The original headers followed by the error headers of ``dead``."""
    original = dead.original
    trace = dead.stack_trace.encode("utf-8", "replace")[-_MAX_TRACE:]
    error_headers = [
        ("__connect.errors.topic", original.topic.encode()),
        ("__connect.errors.partition", str(original.partition).encode()),
        ("__connect.errors.offset", str(original.offset).encode()),
        ("__connect.errors.connector.name", f"{app}.{dead.streamlet}".encode()),
        ("__connect.errors.task.id", str(replica).encode()),
        ("__connect.errors.stage", dead.stage.encode()),
        ("__connect.errors.class.name", dead.streamlet.encode()),
        ("__connect.errors.exception.class.name", dead.error_class.encode()),
        ("__connect.errors.exception.message", dead.error_message.encode("utf-8", "replace")),
        ("__connect.errors.exception.stacktrace", trace),
        ("__streamlets.errors.streamlet", dead.streamlet.encode()),
        ("__streamlets.errors.inlet", (dead.inlet or "").encode()),
    ]
    return [*original.headers, *error_headers]


Headers = list[tuple[str, bytes]]


def fit_dead_letter(
    value: bytes | None,
    key: bytes | None,
    headers: Headers,
    *,
    max_bytes: int,
    overhead: Callable[[bytes | None, Sequence[tuple[str, bytes]]], int],
    original_headers: int = 0,
) -> tuple[bytes | None, Headers]:
    """The value and headers of a dead letter cut to fit ``max_bytes`` (as ``overhead``
    counts a record besides its value); as they are when they fit.

    The value keeps as many leading bytes as fit next to the headers, which gain
    :data:`TRUNCATED_HEADER` (bytes kept) and :data:`VALUE_SIZE_HEADER` (the original
    size). When the headers alone do not fit, the first ``original_headers`` of them (the
    original record's) are left out (:data:`HEADERS_DROPPED_HEADER` says how many) and the
    error message and stack trace are shortened. A tombstone's (``None``) stays one
    unless even its headers do not fit.
    """
    if value is None:  # a tombstone's dead letter: nothing to cut but the headers
        if overhead(key, headers) <= max_bytes:
            return value, headers
        value = b""
    if overhead(key, headers) + len(value) <= max_bytes:
        return value, headers
    size = str(len(value)).encode()
    kept = headers
    room = max_bytes - overhead(key, [*kept, (TRUNCATED_HEADER, size), (VALUE_SIZE_HEADER, size)])
    if room < 0:
        short = [
            (name, text[-_SHORT_TEXT:] if name.endswith(("message", "stacktrace")) else text)
            for name, text in headers[original_headers:]
        ]
        kept = [*short, (HEADERS_DROPPED_HEADER, str(original_headers).encode())]
        room = max_bytes - overhead(
            key, [*kept, (TRUNCATED_HEADER, size), (VALUE_SIZE_HEADER, size)]
        )
    room = min(max(room, 0), len(value))
    marks = [(TRUNCATED_HEADER, str(room).encode()), (VALUE_SIZE_HEADER, size)]
    return value[:room], [*kept, *marks]


def read_dead_letter_headers(
    headers: Sequence[tuple[str, bytes | None]] | None,
) -> Mapping[str, str]:
    """The error headers of a dead-letter record, decoded (for tools and tests)."""
    found: dict[str, str] = {}
    for key, value in headers or ():
        if key.startswith((HEADER_PREFIX, "__streamlets.errors.")):
            found[key] = value.decode("utf-8", "replace") if value is not None else ""
    return found


def _is_error_header(name: str) -> bool:
    return name.startswith((HEADER_PREFIX, "__streamlets.errors."))


def dead_letter_from_record(
    value: bytes | None,
    key: bytes | None,
    headers: Sequence[tuple[str, bytes | None]] | None,
    timestamp: int = -1,
) -> DeadLetter | None:
    """The :class:`DeadLetter` a dead-letter record on Kafka holds (``None`` when the
    record has no dead-letter headers): the original record (its value, key, headers and
    timestamp, and where it came from) and the error, as the in-process runner writes them
    to a run directory.

    A value cut to fit (:data:`TRUNCATED_HEADER`) stays cut; ``error_message`` says so.
    """
    errors = read_dead_letter_headers(headers)
    if "__connect.errors.stage" not in errors:
        return None
    own = tuple((k, v or b"") for k, v in headers or () if not _is_error_header(k))

    def number(name: str) -> int:
        try:
            return int(errors.get(name, "-1"))
        except ValueError:
            return -1

    message = errors.get("__connect.errors.exception.message", "")
    if TRUNCATED_HEADER in errors:
        message += (
            f" [dead letter cut to fit: {errors[TRUNCATED_HEADER]} of "
            f"{errors.get(VALUE_SIZE_HEADER, '?')} bytes of the value kept]"
        )
    original = Message(
        value or b"",
        key,
        own,
        errors.get("__connect.errors.topic", ""),
        number("__connect.errors.partition"),
        number("__connect.errors.offset"),
        timestamp,
    )
    return DeadLetter(
        streamlet=errors.get("__streamlets.errors.streamlet")
        or errors.get("__connect.errors.class.name", ""),
        stage=errors["__connect.errors.stage"],
        error_class=errors.get("__connect.errors.exception.class.name", ""),
        error_message=message,
        stack_trace=errors.get("__connect.errors.exception.stacktrace", ""),
        original=original,
        inlet=errors.get("__streamlets.errors.inlet") or None,
        value_truncated=TRUNCATED_HEADER in errors,
    )
