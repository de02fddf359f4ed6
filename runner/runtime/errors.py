"""Errors of the run itself, as opposed to errors of single records (those are dead letters)."""

from __future__ import annotations

from runner.runtime.messages import DeadLetter
from streamlets.errors import StreamletsError

__all__ = ["StreamletFailed"]


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
