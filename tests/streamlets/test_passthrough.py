"""A record passed on unchanged goes out as its input bytes; any change is encoded anew."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

from runner.runtime.executor import Executor
from runner.runtime.messages import Message
from runner.testkit import run_streamlet, streamlet_blueprint
from streamlets import Inlet, Outlet, Streamlet
from streamlets.codecs import AvroCodec
from streamlets.codecs.passthrough import PassthroughGate, unchanged_check
from streamlets.schema import Schema

ITEM: dict[str, Any] = {
    "type": "record",
    "name": "Item",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "name", "type": "string"},
        {"name": "value", "type": "double"},
        {"name": "either", "type": ["null", "long", "double"], "default": None},
        {"name": "flag", "type": "boolean", "default": False},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
    ],
}
NESTED: dict[str, Any] = {
    "type": "record",
    "name": "Nested",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
    ],
}


def item(i: int = 1, **changes: Any) -> dict[str, Any]:
    record = {"id": i, "name": f"n{i}", "value": 0.0, "either": None, "flag": False, "kind": "A"}
    record.update(changes)
    return record


class Passthrough(Streamlet):
    """Returns every record it is given."""

    inp = Inlet(ITEM)
    out = Outlet(ITEM)

    def process(self, record: dict[str, Any]) -> dict[str, Any]:
        return record


class Negate(Streamlet):
    """Changes the record in place and returns it (0.0 becomes -0.0: equal, not the same)."""

    inp = Inlet(ITEM)
    out = Outlet(ITEM)

    def process(self, record: dict[str, Any]) -> dict[str, Any]:
        record["value"] = -record["value"]
        return record


class Widen(Streamlet):
    """Puts an equal float where the union held an int: another branch on the wire."""

    inp = Inlet(ITEM)
    out = Outlet(ITEM)

    def process(self, record: dict[str, Any]) -> dict[str, Any]:
        record["either"] = float(record["either"])
        return record


class Rename(Streamlet):
    """Changes a string field in place."""

    inp = Inlet(ITEM)
    out = Outlet(ITEM)

    def process(self, record: dict[str, Any]) -> dict[str, Any]:
        record["name"] = record["name"].upper()
        return record


class DropField(Streamlet):
    """Deletes a required field: the record no longer fits the outlet."""

    on_error = "dead-letter"
    inp = Inlet(ITEM)
    out = Outlet(ITEM)

    def process(self, record: dict[str, Any]) -> dict[str, Any]:
        del record["name"]
        return record


class Tag(Streamlet):
    """Changes a nested list in place (a shallow snapshot could not see that)."""

    inp = Inlet(NESTED)
    out = Outlet(NESTED)

    def process(self, record: dict[str, Any]) -> dict[str, Any]:
        record["tags"].append("seen")
        return record


class Copy(Streamlet):
    """Returns a new record each time (a map, not a filter)."""

    inp = Inlet(ITEM)
    out = Outlet(ITEM)

    def process(self, record: dict[str, Any]) -> dict[str, Any]:
        return dict(record)


class Point(BaseModel):
    """A model record: validators and serializers may change it on the way in and out."""

    x: int


class ModelPassthrough(Streamlet):
    """Returns every model record it is given."""

    inp = Inlet(Point)
    out = Outlet(Point)

    def process(self, record: Point) -> Point:
        return record


def executor(cls: type[Streamlet]) -> Executor:
    """An executor of ``cls`` between two Avro topics (the testkit's one-streamlet blueprint)."""
    blueprint = streamlet_blueprint(cls)
    return Executor(blueprint.streamlets["streamlet"], blueprint)


def run(ex: Executor, records: list[Any]) -> tuple[list[Message], list[Message], list[Any]]:
    """Inputs, outputs and dead letters of one batch of ``records``."""
    codec = AvroCodec(ex.spec.schema("inp"))
    inputs = [Message(codec.encode(r), topic="in", offset=i) for i, r in enumerate(records)]
    out, dead = asyncio.run(ex.process_batch("inp", inputs))
    return inputs, [e.message for e in out], dead


def decode(ex: Executor, message: Message) -> Any:
    return AvroCodec(ex.spec.schema("out")).decode(message.value)


def test_a_record_passed_on_unchanged_goes_out_as_its_input_bytes() -> None:
    ex = executor(Passthrough)
    inputs, outputs, dead = run(ex, [item(1), item(2, either=7, flag=True, kind="B")])
    assert dead == []
    assert [o.value for o in outputs] == [i.value for i in inputs]
    assert all(o.value is i.value for o, i in zip(outputs, inputs, strict=True))
    assert ex.stats.records_out == 2


@pytest.mark.parametrize(
    ("cls", "field", "expected"),
    [(Negate, "value", -0.0), (Rename, "name", "N1")],
)
def test_a_record_changed_in_place_is_encoded_again(
    cls: type[Streamlet], field: str, expected: Any
) -> None:
    ex = executor(cls)
    inputs, outputs, _ = run(ex, [item(1)])
    assert outputs[0].value != inputs[0].value
    got = decode(ex, outputs[0])[field]
    assert got == expected
    if isinstance(expected, float):
        assert str(got) == str(expected)  # the sign of zero survives


def test_an_equal_value_of_another_type_in_a_union_takes_its_own_branch() -> None:
    ex = executor(Widen)
    inputs, outputs, _ = run(ex, [item(1, either=3)])
    assert outputs[0].value != inputs[0].value
    value = decode(ex, outputs[0])["either"]
    assert value == 3.0 and isinstance(value, float)


def test_a_record_that_no_longer_fits_is_dead_lettered_not_forwarded() -> None:
    ex = executor(DropField)
    inputs, outputs, dead = run(ex, [item(1)])
    assert outputs == []
    assert [d.stage for d in dead] == ["encode"]
    assert dead[0].original.value is inputs[0].value


def test_nested_mutable_values_and_models_are_always_encoded() -> None:
    tag = executor(Tag)
    assert tag._passthrough == {}
    codec = AvroCodec(tag.spec.schema("inp"))
    message = Message(codec.encode({"id": 1, "tags": ["a"]}), topic="in")
    out, _ = asyncio.run(tag.process_batch("inp", [message]))
    assert decode(tag, out[0].message)["tags"] == ["a", "seen"]
    assert executor(ModelPassthrough)._passthrough == {}
    result = run_streamlet(ModelPassthrough, {"inp": [Point(x=1)]})
    assert result.outputs["out"] == [Point(x=1)]


def test_unchanged_check_covers_only_flat_records() -> None:
    assert unchanged_check(Schema.of(ITEM).parsed) is not None
    assert unchanged_check(Schema.of(NESTED).parsed) is None
    assert unchanged_check(Schema.of("string").parsed) is None
    check = unchanged_check(Schema.of(ITEM).parsed)
    assert check is not None
    record = item(1, value=1.5)
    assert check(record, dict(record))
    assert not check(item(1, value=float("1.5")), record)  # equal, another float object
    assert not check(item(2), record)


def test_the_snapshot_stops_when_records_are_seldom_passed_on() -> None:
    ex = executor(Copy)
    assert "inp" in ex._passthrough
    run(ex, [item(i) for i in range(1100)])
    assert not ex._gate.open
    _, outputs, _ = run(ex, [item(5)])
    assert decode(ex, outputs[0]) == item(5)
    keeps = executor(Passthrough)
    run(keeps, [item(i) for i in range(1100)])
    assert keeps._gate.open


def test_gate_closes_for_good_when_too_few_records_were_forwarded() -> None:
    gate = PassthroughGate(warmup=10, ratio=2)
    gate.record(5, 0)
    assert gate.open  # still warming up
    gate.record(5, 5)
    assert gate.open  # half of them forwarded: worth it
    gate.record(10, 0)
    assert not gate.open  # 5 of 20
    gate.record(100, 100)
    assert not gate.open
