"""Per-streamlet counters, summed over instances and incarnations by the runners."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["StreamletStats"]


@dataclass(slots=True)
class StreamletStats:
    """Counters of one streamlet (summed over its instances by the runners)."""

    records_in: int = 0
    records_out: int = 0
    errors: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    process_seconds: float = 0.0
    by_stage: dict[str, int] = field(default_factory=dict)

    def count_error(self, stage: str) -> None:
        """Count one failed record at ``stage``."""
        self.errors += 1
        self.by_stage[stage] = self.by_stage.get(stage, 0) + 1
