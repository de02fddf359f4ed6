"""Rejected input: what a source yields for data it read but could not turn into a record."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Rejected"]


@dataclass(frozen=True, slots=True)
class Rejected:
    """Input a source could not turn into a valid record.

    A source yields ``Rejected(original, error)`` instead of raising, so that one bad line
    of a file does not end the source: the runner applies the streamlet's ``on_error``
    policy to it (dead letter with the original bytes, skip, or fail), exactly as for a
    record that fails to decode on a topic. ``where`` says where the input came from
    (``readings.jsonl:17``).
    """

    original: bytes
    error: BaseException
    where: str = ""
