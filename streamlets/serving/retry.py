"""Exponential backoff with jitter, shared by request retries and readiness probes."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays ``base * 2**attempt`` capped at ``cap`` seconds, with "equal jitter".

    Half the delay is fixed and half random, so many clients retrying after the same
    outage spread out instead of arriving together, yet none retries at once.
    """

    base: float = 0.05
    cap: float = 2.0

    def delay(self, attempt: int) -> float:
        """The wait before retry number ``attempt`` (0 for the first retry)."""
        full = min(self.cap, self.base * float(2 ** min(attempt, 30)))
        return full / 2 + random.uniform(0, full / 2)
