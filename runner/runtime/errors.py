"""Errors of the run itself, as opposed to errors of single records (those are dead letters)."""

from __future__ import annotations

from runner.runtime.messages import DeadLetter
from streamlets.errors import DecodeError, StreamletsError

__all__ = ["StreamletFailed", "UnexpectedTombstone"]


class StreamletFailed(StreamletsError):
    """A record failed in a streamlet whose ``on_error`` policy is ``fail``."""

    def __init__(self, dead: DeadLetter) -> None:
        where = (
            f" (topic {dead.original.topic}, offset {dead.original.offset})"
            if dead.original.topic
            else ""
        )
        super().__init__(
            f"streamlet '{dead.streamlet}' failed to {dead.stage} a record{where}: "
            f"{dead.error_class}: {dead.error_message}"
        )
        self.dead = dead


class UnexpectedTombstone(DecodeError):
    """A tombstone (a record with a null value) arrived on an inlet that is not a table:
    there is no record to hand its handler. It follows the error policy (stage ``decode``)."""

    def __init__(self, inlet: str, key: bytes | None) -> None:
        shown = "no key" if key is None else f"key {key.decode('utf-8', 'replace')!r}"
        super().__init__(
            f"inlet '{inlet}' got a tombstone (a record with a null value, {shown}), and it "
            "is not a table, so there is no record to process; only a table inlet "
            "(Inlet(Schema, table=True)) takes tombstones, which delete its key; write "
            "tombstones only to topics that tables read"
        )
