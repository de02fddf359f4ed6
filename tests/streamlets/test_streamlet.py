"""The Streamlet base class: port and config discovery, handlers, routing, definitions."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import streamlets
from streamlets import ConfigError, Inlet, NoConfig, Outlet, Routed, Streamlet, StreamletsError


class Reading(BaseModel):
    sensor_id: str
    temperature: float


class Alert(BaseModel):
    sensor_id: str


class Threshold(Streamlet):
    """Emits an alert for each reading above the limit."""

    readings = Inlet(Reading)
    alerts = Outlet(Alert)

    class Config(BaseModel):
        limit: float = 30.0

    def process(self, reading: Reading) -> Alert | None:
        return (
            Alert(sensor_id=reading.sensor_id) if reading.temperature > self.config.limit else None
        )


class Split(Streamlet):
    readings = Inlet(Reading)
    hot = Outlet(Alert)
    cold = Outlet({"type": "record", "name": "Cold", "fields": [{"name": "id", "type": "string"}]})

    def process(self, reading: Reading) -> Iterator[Routed[Any]]:
        if reading.temperature > 30:
            yield self.hot.emit(Alert(sensor_id=reading.sensor_id))
        else:
            yield self.cold.emit({"id": reading.sensor_id})


class Join(Streamlet):
    left = Inlet(Reading)
    right = Inlet(Alert)
    out = Outlet(Alert)

    @left.handler
    def on_left(self, reading: Reading) -> Alert:
        return Alert(sensor_id="L" + reading.sensor_id)

    @right.handler
    def on_right(self, alert: Alert) -> Alert:
        return Alert(sensor_id="R" + alert.sensor_id)


def test_ports_are_discovered_in_declaration_order() -> None:
    assert list(Threshold.inlets()) == ["readings"]
    assert list(Threshold.outlets()) == ["alerts"]
    assert Threshold.inlets()["readings"].name == "readings"
    assert Threshold.inlets()["readings"].model is Reading
    assert list(Split.outlets()) == ["hot", "cold"]
    assert Split.outlets()["cold"].model is None
    assert Threshold.kind() == "processor"
    assert Split.kind() == "processor"


def test_kinds() -> None:
    class Source(Streamlet):
        out = Outlet(Reading)

        def generate(self) -> Iterator[Reading]:
            yield Reading(sensor_id="a", temperature=1)

    class Sink(Streamlet):
        inp = Inlet(Reading)

        def process(self, reading: Reading) -> None:
            return None

    assert Source.kind() == "source"
    assert Sink.kind() == "sink"
    assert Source.definition_problems() == []
    assert list(Source().generate()) == [Reading(sensor_id="a", temperature=1)]  # type: ignore[arg-type]


def test_ports_are_inherited_and_overridable() -> None:
    class Base(Streamlet):
        control = Inlet(Alert)
        records = Inlet(Reading)

        def process(self, record: Any) -> None:
            return None

    class Child(Base):
        records = Inlet(Alert)  # type: ignore[assignment]
        out = Outlet(Alert)

    assert list(Child.inlets()) == ["control", "records"]
    assert Child.inlets()["records"].model is Alert
    assert list(Base.outlets()) == []
    assert list(Child.outlets()) == ["out"]


def test_config_is_validated() -> None:
    assert Threshold().config.limit == 30.0
    assert Threshold({"limit": 12}).config.limit == 12.0
    assert Threshold(Threshold.Config(limit=3)).config.limit == 3
    with pytest.raises(ConfigError, match="limit"):
        Threshold({"limit": "hot"})
    assert isinstance(ConfigError("x"), StreamletsError)


def test_streamlet_without_config_rejects_keys() -> None:
    class Sink(Streamlet):
        inp = Inlet(Reading)

        def process(self, reading: Reading) -> None:
            return None

    assert Sink.Config is NoConfig
    with pytest.raises(ConfigError):
        Sink({"x": 1})


def test_process_and_routing() -> None:
    t = Threshold({"limit": 20}, name="threshold")
    assert t.name == "threshold"
    assert t.handler_for("readings")(Reading(sensor_id="a", temperature=25)) == Alert(sensor_id="a")
    results = list(Split().process(Reading(sensor_id="a", temperature=35)))
    assert results == [Routed(Split.hot, Alert(sensor_id="a"))]  # type: ignore[arg-type]
    assert results[0].outlet.name == "hot"


def test_handlers_per_inlet() -> None:
    j = Join()
    assert Join.__handlers__ == {"left": "on_left", "right": "on_right"}
    assert j.handler_for("left")(Reading(sensor_id="x", temperature=1)).sensor_id == "Lx"
    assert j.handler_for("right")(Alert(sensor_id="y")).sensor_id == "Ry"
    assert Join.definition_problems() == []


def test_definition_problems() -> None:
    class NoProcess(Streamlet):
        inp = Inlet(Reading)

    class NoGenerate(Streamlet):
        out = Outlet(Reading)

    class BadPolicy(Streamlet):
        on_error = "ignore"  # type: ignore[assignment]
        out = Outlet(Reading)

        def generate(self) -> Iterator[Reading]:
            return iter(())

    assert "process()" in NoProcess.definition_problems()[0]
    assert "generate()" in NoGenerate.definition_problems()[0]
    assert "on_error" in BadPolicy.definition_problems()[0]


def test_public_api_is_sorted_and_complete() -> None:
    assert streamlets.__all__ == sorted(
        streamlets.__all__, key=str.casefold
    ) or streamlets.__all__ == sorted(streamlets.__all__)
    for name in streamlets.__all__:
        assert hasattr(streamlets, name), name


def test_public_names_have_docstrings() -> None:
    root = Path(streamlets.__file__).parent
    missing: list[str] = []
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            public = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            if public and not node.name.startswith("_") and ast.get_docstring(node) is None:  # type: ignore[attr-defined]
                missing.append(f"{path.name}:{node.name}")  # type: ignore[attr-defined]
    assert missing == []
