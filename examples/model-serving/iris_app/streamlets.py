"""Streamlets of the model-serving example: iris flowers scored by a model server.

``IrisSource`` streams the iris data set that ships with scikit-learn, ``SwitchModel``
sends one control record after a delay (switching the scorer to another model version
mid-stream) and ``ScoreIris`` is the bundled model-serving streamlet with this example's
record types.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, Field

from streamlets import Inlet, Outlet, Streamlet
from streamlets.serving import ModelInfo, ModelServingStreamlet, ModelUpdate

SPECIES = ("setosa", "versicolor", "virginica")


class Flower(BaseModel):
    """One iris flower's measurements (cm)."""

    id: int
    sepal_length: float
    sepal_width: float
    petal_length: float
    petal_width: float


class ScoredFlower(BaseModel):
    """A flower with the species the model predicted and which model said so."""

    id: int
    species: str
    model: str
    version: str | None
    latency_ms: float


class IrisSource(Streamlet):
    """``count`` flowers (the 150 iris samples over and over) at about ``per_second``."""

    out = Outlet(Flower)

    class Config(BaseModel):
        count: int = Field(3000, ge=0, description="how many flowers to send")
        per_second: float = Field(1000.0, ge=0, description="rate; 0 for as fast as possible")

    config: Config

    async def generate(self) -> AsyncIterator[Flower]:
        from sklearn.datasets import load_iris

        rows = load_iris().data.tolist()
        step = 50
        for i in range(self.config.count):
            row = rows[i % len(rows)]
            yield Flower(
                id=i,
                sepal_length=row[0],
                sepal_width=row[1],
                petal_length=row[2],
                petal_width=row[3],
            )
            if self.config.per_second and i % step == step - 1:
                await asyncio.sleep(step / self.config.per_second)


class SwitchModel(Streamlet):
    """Sends one control record after ``after_s`` seconds: score with this model from now."""

    # Keyed by the model's name: Kafka refuses keyless records on the compacted control
    # topic, and compaction keeps the latest update of each key (here: of the iris model).
    out = Outlet(ModelUpdate, key="model")

    class Config(BaseModel):
        after_s: float = Field(1.5, ge=0, description="seconds to wait before switching")
        url: str | None = None
        model: str | None = None
        version: str | None = None
        protocol: str | None = None
        path: str | None = None
        outputs: list[str] | None = None

    config: Config

    async def generate(self) -> AsyncIterator[ModelUpdate]:
        await asyncio.sleep(self.config.after_s)
        yield ModelUpdate(**self.config.model_dump(exclude={"after_s"}))


class ScoreIris(ModelServingStreamlet):
    """Predicts the species of each flower."""

    records = Inlet(Flower)
    results = Outlet(ScoredFlower)

    def to_input(self, record: Flower) -> list[float]:
        return [record.sepal_length, record.sepal_width, record.petal_length, record.petal_width]

    def to_result(self, record: Flower, prediction: Any, model: ModelInfo) -> ScoredFlower:
        return ScoredFlower(
            id=record.id,
            species=SPECIES[int(prediction)],
            model=model.name,
            version=model.version,
            latency_ms=round(model.latency_s * 1000, 3),
        )
