"""The dead-letter stage of a bad record comes from what failed, on both codecs.

``decode``: the bytes are no record (not JSON, not Avro of the schema, truncated).
``validate``: the bytes are a record that does not fit the inlet's model or schema.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, Field

from runner.testkit import Raw, run_streamlet
from streamlets import Inlet, Outlet, Streamlet
from streamlets.codecs import AvroCodec
from streamlets.schema import Schema


class ValidReading(BaseModel):
    """Named so that a search of the error text for "valid" would take every failure for
    a validation failure."""

    sensor_id: str
    level: int = Field(le=10)


LEVEL: dict[str, Any] = {
    "type": "record",
    "name": "Level",
    "fields": [{"name": "sensor_id", "type": "string"}, {"name": "level", "type": "long"}],
}


class ModelPort(Streamlet):
    """Passes readings on (a pydantic model port)."""

    readings = Inlet(ValidReading)
    out = Outlet(ValidReading)

    def process(self, reading: ValidReading) -> ValidReading:
        return reading


class DictPort(Streamlet):
    """Passes levels on (an Avro-dict port)."""

    readings = Inlet(LEVEL)
    out = Outlet(LEVEL)

    def process(self, level: dict[str, Any]) -> dict[str, Any]:
        return level


def avro(record: dict[str, Any]) -> bytes:
    """Avro bytes of a record with the fields of both ports (the level is not checked)."""
    return AvroCodec(Schema.of(LEVEL)).encode(record)


TOO_HIGH = {"sensor_id": "s", "level": 11}  # fits the Avro schema, not the model's le=10

CASES = [
    # codec, streamlet, bytes, stage
    ("json", ModelPort, b"not json at all", "decode"),
    ("json", ModelPort, b'{"sensor_id": "s", "level": 1', "decode"),  # truncated
    ("json", ModelPort, b"\xff\xfe\xfd", "decode"),
    ("json", ModelPort, b'{"sensor_id": "s", "level": 11}', "validate"),
    ("json", ModelPort, b'{"sensor_id": "s"}', "validate"),
    ("json", DictPort, b"not json at all", "decode"),
    ("json", DictPort, b'{"sensor_id": "s"}', "validate"),
    ("json", DictPort, b'{"sensor_id": "s", "level": "high"}', "validate"),
    ("avro", ModelPort, b"\xff\xfe\xfd garbage", "decode"),
    ("avro", ModelPort, avro(TOO_HIGH)[:-1], "decode"),  # truncated
    ("avro", ModelPort, avro(TOO_HIGH) + b"\x00", "decode"),  # bytes left over
    ("avro", ModelPort, avro(TOO_HIGH), "validate"),
    ("avro", DictPort, b"\xff\xfe\xfd garbage", "decode"),
]


@pytest.mark.parametrize(
    ("codec", "streamlet", "data", "stage"),
    CASES,
    ids=[f"{c}-{s.__name__}-{stage}-{i}" for i, (c, s, _, stage) in enumerate(CASES)],
)
def test_dead_letter_stage(codec: str, streamlet: type[Streamlet], data: bytes, stage: str) -> None:
    good = {"sensor_id": "ok", "level": 1}
    record = ValidReading(**good) if streamlet is ModelPort else good
    result = run_streamlet(streamlet, {"readings": [record, Raw(data), record]}, codec=codec)
    assert result.outputs["out"] == [record, record]
    (dead,) = result.dead_letters
    assert (dead.stage, dead.original.value) == (stage, data)
    assert result.stats.by_stage == {stage: 1} and result.stats.dead_lettered == 1


SEEN: list[int] = []


class Collect(Streamlet):
    """A sink: keeps levels, fails on level 7, returns (wrongly) the record of level 8."""

    readings = Inlet(LEVEL)

    def process(self, level: dict[str, Any]) -> Any:
        if level["level"] == 7:
            raise ValueError("seven is not allowed")
        if level["level"] == 8:
            return level
        SEEN.append(level["level"])
        return None


@pytest.mark.parametrize("codec", ["avro", "json"])
def test_a_sinks_failures_are_dead_lettered_at_their_stage_and_the_rest_goes_on(
    codec: str,
) -> None:
    levels = [{"sensor_id": "s", "level": n} for n in range(10)]
    inputs: list[Any] = [*levels[:3], Raw(b"\xff\xfe garbage"), *levels[3:]]
    SEEN.clear()
    result = run_streamlet(Collect, {"readings": inputs}, codec=codec)
    assert SEEN == [0, 1, 2, 3, 4, 5, 6, 9]
    stages = [(d.stage, d.error_message) for d in result.dead_letters]
    assert [stage for stage, _ in stages] == ["decode", "process", "process"]
    assert "seven is not allowed" in stages[1][1]
    assert "it is a sink (no outlets): its process() must return None" in stages[2][1]
    assert result.stats.records_in == 11 and result.stats.records_out == 0
