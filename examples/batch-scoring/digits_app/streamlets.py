"""Streamlets of the batch-scoring example: handwritten digits scored by a model server."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from streamlets import Inlet, Outlet
from streamlets.serving import ModelInfo, ModelServingStreamlet


class Digit(BaseModel):
    """One 8x8 image of a handwritten digit: 64 grey levels (0-16), row by row."""

    id: int
    pixels: list[float]


class ScoredDigit(BaseModel):
    """The digit the model read, and which model version read it."""

    id: int
    digit: int
    version: str | None


class ScoreDigits(ModelServingStreamlet):
    """Reads each digit with the model."""

    records = Inlet(Digit)
    results = Outlet(ScoredDigit)

    def to_input(self, record: Digit) -> list[float]:
        return record.pixels

    def to_result(self, record: Digit, prediction: Any, model: ModelInfo) -> ScoredDigit:
        return ScoredDigit(id=record.id, digit=int(prediction), version=model.version)
