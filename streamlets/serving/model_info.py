"""Which model answered: attached to every prediction handed to ``to_result``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ModelInfo"]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """The model that produced a prediction, and how long its request took.

    ``protocol`` is ``v1``, ``v2`` or ``embedded``; ``url`` is the server's base URL (the
    model file for an embedded model); ``latency_s`` is the duration of the request (or
    in-process call) that scored the record's batch, ``batch_size`` its number of records.
    """

    name: str
    version: str | None
    protocol: str
    url: str
    latency_s: float = 0.0
    batch_size: int = 0

    @property
    def label(self) -> str:
        """``name`` or ``name:version``."""
        return f"{self.name}:{self.version}" if self.version else self.name
