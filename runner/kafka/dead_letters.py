"""Dead letters on Kafka: the original record plus headers that say what went wrong.

The headers follow Kafka Connect's dead-letter-queue convention (``__connect.errors.*``),
so tools that read a Connect DLQ read ours; ``__streamlets.errors.*`` adds what Connect
has no name for. The record keeps its original key, value and headers, so it can be
replayed as it was.
"""

from __future__ import annotations

from collections.abc import Mapping

from runner.runtime.messages import DeadLetter

__all__ = ["HEADER_PREFIX", "dead_letter_headers", "read_dead_letter_headers"]

HEADER_PREFIX = "__connect.errors."
_MAX_TRACE = 16_000  # bytes of stack trace kept in a header


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


def read_dead_letter_headers(
    headers: list[tuple[str, bytes]] | None,
) -> Mapping[str, str]:
    """The error headers of a dead-letter record, decoded (for tools and tests)."""
    found: dict[str, str] = {}
    for key, value in headers or ():
        if key.startswith((HEADER_PREFIX, "__streamlets.errors.")):
            found[key] = value.decode("utf-8", "replace") if value is not None else ""
    return found
