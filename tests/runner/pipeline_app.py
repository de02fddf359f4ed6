"""Streamlets for the pipeline tests (imported by blueprints written into tmp dirs)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, Field

from streamlets import Inlet, Outlet, Streamlet


class Number(BaseModel):
    value: int
    source: str = ""


class Doubled(BaseModel):
    value: int
    doubled: int


class Numbers(Streamlet):
    """Emits ``count`` numbers (optionally forever, slowly)."""

    out = Outlet(Number)

    class Config(BaseModel):
        count: int | None = 10
        label: str = "n"
        delay_s: float = 0.0

    def generate(self) -> Iterator[Number]:
        i = 0
        while self.config.count is None or i < self.config.count:
            if self.config.delay_s:
                time.sleep(self.config.delay_s)
            yield Number(value=i, source=self.config.label)
            i += 1


class Double(Streamlet):
    """Doubles each number; raises on multiples of ``fail_every`` (when set)."""

    numbers = Inlet(Number)
    out = Outlet(Doubled)

    class Config(BaseModel):
        fail_every: int | None = None

    def process(self, n: Number) -> Doubled:
        if self.config.fail_every and n.value % self.config.fail_every == 0 and n.value:
            raise ValueError(f"refusing {n.value}")
        return Doubled(value=n.value, doubled=2 * n.value)


class AsyncDouble(Streamlet):
    """Doubles each number after an async pause (out of order completion, in order output)."""

    numbers = Inlet(Number)
    out = Outlet(Doubled)

    async def process(self, n: Number) -> Doubled:
        await asyncio.sleep(0.001 * (7 - n.value % 7))
        return Doubled(value=n.value, doubled=2 * n.value)


class Collect(Streamlet):
    """Appends each record as JSON to ``path`` (one file per process and instance)."""

    records = Inlet(Doubled)

    class Config(BaseModel):
        path: Path
        delay_s: float = Field(0.0, description="sleep per record: a slow sink")

    def setup(self) -> None:
        self.config.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.config.path.open("a", encoding="utf-8")

    def process(self, record: Doubled) -> None:
        if self.config.delay_s:
            time.sleep(self.config.delay_s)
        self._fh.write(json.dumps({"value": record.value, "pid": os.getpid()}) + "\n")
        self._fh.flush()

    def teardown(self) -> None:
        self._fh.close()


class CollectNumbers(Streamlet):
    """Appends each Number as JSON to ``path``."""

    numbers = Inlet(Number)

    class Config(BaseModel):
        path: Path

    def setup(self) -> None:
        self.config.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.config.path.open("a", encoding="utf-8")

    def process(self, n: Number) -> None:
        self._fh.write(n.model_dump_json() + "\n")
        self._fh.flush()

    def teardown(self) -> None:
        self._fh.close()


class Setting(BaseModel):
    factor: int


class Scaler(Streamlet):
    """Multiplies numbers by the latest factor from its control inlet (every replica's own)."""

    numbers = Inlet(Number)
    control = Inlet(Setting)
    out = Outlet(Doubled)
    replay_inlets = ("control",)

    class Config(BaseModel):
        log: Path

    def setup(self) -> None:
        self.factor = 1

    @control.handler
    def on_control(self, setting: Setting) -> None:
        self.factor = setting.factor
        with self.config.log.open("a", encoding="utf-8") as fh:
            fh.write(f"{id(self)} {setting.factor}\n")

    @numbers.handler
    def on_number(self, n: Number) -> Doubled:
        return Doubled(value=n.value, doubled=n.value * self.factor)


class Settings(Streamlet):
    """Emits one Setting."""

    out = Outlet(Setting)

    class Config(BaseModel):
        factor: int = 3

    def generate(self) -> Iterator[Setting]:
        yield Setting(factor=self.config.factor)


class TracedDouble(Double):
    """A :class:`Double` that appends ``<instance> <source> <value>`` to ``log`` per record.

    ``setup`` writes ``<instance> setup -1``, so instances that got no record show too.
    """

    class Config(BaseModel):
        fail_every: int | None = None
        log: Path

    def setup(self) -> None:
        self._trace = self.config.log.open("a", encoding="utf-8")
        self._trace.write(f"{os.getpid()}-{id(self)} setup -1\n")
        self._trace.flush()

    def process(self, n: Number) -> Doubled:
        self._trace.write(f"{os.getpid()}-{id(self)} {n.source} {n.value}\n")
        self._trace.flush()
        return super().process(n)

    def teardown(self) -> None:
        self._trace.close()
