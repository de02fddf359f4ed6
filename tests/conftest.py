"""Shared fixtures: write a blueprint and its streamlet module into a temporary directory."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

SAMPLE_MODULE = '''
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from enum import Enum

from pydantic import BaseModel, Field

from streamlets import Inlet, Outlet, Streamlet


class Location(BaseModel):
    lat: float
    lon: float


class Reading(BaseModel):
    sensor_id: str
    temperature: float
    location: Location | None = None


class IntReading(BaseModel):
    __avro_aliases__ = ("Reading",)

    sensor_id: str
    temperature: int


class NewReading(BaseModel):
    __avro_aliases__ = ("Reading",)

    sensor_id: str
    temperature: float
    unit: str


class Located(BaseModel):
    sensor_id: str
    location: "IntLocation"


class IntLocation(BaseModel):
    __avro_aliases__ = ("Location",)

    lat: int
    lon: float


class Source(Streamlet):
    """Emits three readings."""

    out = Outlet(Reading)

    class Config(BaseModel):
        count: int = Field(3, ge=0)

    def generate(self) -> Iterator[Reading]:
        for i in range(self.config.count):
            yield Reading(sensor_id=f"s{i}", temperature=20.0 + i)


class Pass(Streamlet):
    readings = Inlet(Reading)
    out = Outlet(Reading)

    class Config(BaseModel):
        limit: float = 30.0
        label: str = "x"

    def process(self, reading: Reading) -> Reading:
        return reading


class Sink(Streamlet):
    readings = Inlet(Reading)

    def process(self, reading: Reading) -> None:
        return None


class IntSink(Streamlet):
    readings = Inlet(IntReading)

    def process(self, reading: IntReading) -> None:
        return None


class NewSink(Streamlet):
    readings = Inlet(NewReading)

    def process(self, reading: NewReading) -> None:
        return None


class Needs(Streamlet):
    readings = Inlet(Reading)

    class Config(BaseModel):
        url: str

    def process(self, reading: Reading) -> None:
        return None


class TwoIn(Streamlet):
    left = Inlet(Reading)
    right = Inlet(Reading)
    out = Outlet(Reading)

    @left.handler
    def on_left(self, r: Reading) -> Reading:
        return r

    @right.handler
    def on_right(self, r: Reading) -> Reading:
        return r


class NoProcess(Streamlet):
    readings = Inlet(Reading)


class NoGenerate(Streamlet):
    out = Outlet(Reading)


class Weird:
    pass


class BadSchema(Streamlet):
    out = Outlet({"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]})

    def generate(self) -> Iterator[dict]:
        return iter(())


NOT_A_CLASS = 42
'''


@pytest.fixture
def write_blueprint(tmp_path: Path) -> Callable[..., Path]:
    """Write ``sample_app.py`` and a blueprint (dedented) into tmp_path; return its path."""

    def write(text: str, name: str = "blueprint.yaml", module: str = SAMPLE_MODULE) -> Path:
        (tmp_path / "sample_app.py").write_text(module)
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write
