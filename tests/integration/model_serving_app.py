"""Streamlets of the model-server integration tests: iris records, a control source, a scorer.

Blueprints written by the tests load this file by path (``model_serving_app:...``), so the
counters below are those of the module the runner loaded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel

from streamlets import Inlet, Outlet, Streamlet
from streamlets.serving import ModelInfo, ModelServingStreamlet, ModelUpdate

#: ``produced``: records FlowerSource has produced so far (read by tests from another thread).
PROGRESS = {"produced": 0}


class Flower(BaseModel):
    id: int
    features: list[float]


class ScoredFlower(BaseModel):
    id: int
    label: int
    model: str
    version: str | None
    protocol: str
    batch_size: int


def iris_rows() -> list[list[float]]:
    """The 150 iris feature rows that ship with scikit-learn."""
    from sklearn.datasets import load_iris

    return [[float(v) for v in row] for row in load_iris().data]


class FlowerSource(Streamlet):
    """``count`` iris records at about ``per_second`` (0: as fast as possible)."""

    out = Outlet(Flower)

    class Config(BaseModel):
        count: int = 1000
        per_second: float = 0.0

    async def generate(self) -> AsyncIterator[Flower]:
        PROGRESS["produced"] = 0
        rows = iris_rows()
        step = 50
        for i in range(self.config.count):
            yield Flower(id=i, features=rows[i % len(rows)])
            PROGRESS["produced"] = i + 1
            if self.config.per_second and i % step == step - 1:
                await asyncio.sleep(step / self.config.per_second)


class SwitchAfter(Streamlet):
    """Emits one control record once FlowerSource has produced ``after`` records."""

    out = Outlet(ModelUpdate, key="model")  # control records are keyed (compacted topics)

    class Config(BaseModel):
        after: int
        url: str | None = None
        model: str | None = None
        version: str | None = None
        protocol: str | None = None
        path: str | None = None
        outputs: list[str] | None = None

    async def generate(self) -> AsyncIterator[ModelUpdate]:
        while PROGRESS["produced"] < self.config.after:
            await asyncio.sleep(0.002)
        cfg = self.config
        yield ModelUpdate(
            url=cfg.url,
            model=cfg.model,
            version=cfg.version,
            protocol=cfg.protocol,
            path=cfg.path,
            outputs=cfg.outputs,
        )


class ScoreFlowers(ModelServingStreamlet):
    """Classifies iris flowers."""

    records = Inlet(Flower)
    results = Outlet(ScoredFlower)

    def to_input(self, record: Flower) -> list[float]:
        return record.features

    def to_result(self, record: Flower, prediction: Any, model: ModelInfo) -> ScoredFlower:
        return ScoredFlower(
            id=record.id,
            label=int(prediction),
            model=model.name,
            version=model.version,
            protocol=model.protocol,
            batch_size=model.batch_size,
        )
