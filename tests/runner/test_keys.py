"""Keys, timestamps and headers (DESIGN §3.5) through the in-process runner and testkit:
Meta in, inheritance out, key=/emit(key=), murmur2 partitions and per-key order with
replicas, compacted topics, dead letters keeping what the record carried."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from runner.runtime.partitioning import partition_for
from runner.testkit import Raw, Record, run_blueprint, run_streamlet
from streamlets import Inlet, Meta, Outlet, Streamlet

SEEN: list[Meta] = []

ITEM = {
    "type": "record",
    "name": "Item",
    "fields": [{"name": "id", "type": "long"}, {"name": "sensor", "type": "string"}],
}
AT = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)


class Reading(BaseModel):
    sensor: str
    value: float


class Alert(BaseModel):
    sensor: str
    value: float


class Sees(Streamlet):
    """Keeps the Meta of each record and passes the record on (a new model record)."""

    readings = Inlet(Reading)
    alerts = Outlet(Alert)

    def process(self, reading: Reading, meta: Meta) -> Alert:
        SEEN.append(meta)
        return Alert(sensor=reading.sensor, value=reading.value)


class AsyncSees(Streamlet):
    readings = Inlet(Reading)
    alerts = Outlet(Alert)

    async def process(self, reading: Reading, meta: Meta) -> Alert:
        SEEN.append(meta)
        return Alert(sensor=reading.sensor, value=reading.value)


class Forward(Streamlet):
    """Returns its input unchanged (the bytes-forwarding fast path)."""

    inp = Inlet(ITEM)
    out = Outlet(ITEM)

    def process(self, item: dict[str, Any]) -> dict[str, Any]:
        return item


class KeyBySensor(Streamlet):
    readings = Inlet(Reading)
    alerts = Outlet(Alert, key="sensor")

    def process(self, reading: Reading) -> Alert:
        return Alert(sensor=reading.sensor, value=reading.value)


class EmitOwn(Streamlet):
    readings = Inlet(Reading)
    alerts = Outlet(Alert)

    def process(self, reading: Reading) -> Any:
        return self.alerts.emit(
            Alert(sensor=reading.sensor, value=reading.value),
            key=f"k-{reading.sensor}",
            timestamp=AT,
            headers={"extra": "1"},
        )


class KeyedSource(Streamlet):
    out = Outlet(Reading)

    def generate(self) -> Iterator[Any]:
        yield self.out.emit(Reading(sensor="s", value=1.0), key="s", timestamp=1000)
        yield Reading(sensor="t", value=2.0)  # keyless, stamped when produced


def reading(sensor: str, value: float = 1.0) -> Reading:
    return Reading(sensor=sensor, value=value)


@pytest.mark.parametrize("cls", [Sees, AsyncSees])
def test_a_handler_that_asks_gets_key_timestamp_headers_and_position(cls: type[Streamlet]) -> None:
    SEEN.clear()
    record = Record(reading("a"), key="sensor-7", timestamp=AT, headers={"traceparent": "00-1"})
    result = run_streamlet(cls, {"readings": [record, reading("b")]})
    assert result.error is None
    first, second = SEEN
    assert first.key == "sensor-7" and first.raw_key == b"sensor-7"
    assert first.timestamp == AT
    assert dict(first.headers) == {"traceparent": b"00-1"}  # no framework header
    assert first.topic == "in.readings" and first.partition == 0 and first.offset == 0
    assert second.key is None and second.headers == {} and second.offset == 1
    assert second.timestamp.tzinfo is not None  # stamped when it was put on the topic


def test_outputs_inherit_the_inputs_key_timestamp_and_headers() -> None:
    record = Record(reading("a"), key="sensor-7", timestamp=AT, headers={"traceparent": "00-1"})
    result = run_streamlet(Sees, {"readings": [record]})
    (out,) = result.records["alerts"]
    assert out.value == Alert(sensor="a", value=1.0)
    assert out.key == "sensor-7" and out.timestamp == AT
    assert out.headers == {"traceparent": b"00-1"}
    assert result.outputs["alerts"] == [out.value]  # plain values as before


def test_forwarded_bytes_keep_the_key_timestamp_and_headers() -> None:
    items = [
        Record({"id": i, "sensor": "x"}, key=f"k{i}", timestamp=1_000 + i, headers={"h": "v"})
        for i in range(5)
    ]
    result = run_streamlet(Forward, {"inp": items})
    assert [(r.key, r.timestamp, r.headers) for r in result.records["out"]] == [
        (f"k{i}", datetime.fromtimestamp((1_000 + i) / 1000, UTC), {"h": b"v"}) for i in range(5)
    ]


def test_an_outlet_key_field_and_emit_metadata_win_over_the_inherited() -> None:
    keyed = run_streamlet(KeyBySensor, {"readings": [Record(reading("a"), key="other")]})
    assert [r.key for r in keyed.records["alerts"]] == ["a"]
    own = run_streamlet(EmitOwn, {"readings": [Record(reading("b"), key="x", headers={"h": "1"})]})
    (out,) = own.records["alerts"]
    assert out.key == "k-b" and out.timestamp == AT
    assert out.headers == {"h": b"1", "extra": b"1"}


def test_a_source_emits_keys_and_timestamps_of_its_own() -> None:
    result = run_streamlet(KeyedSource)
    first, second = result.records["out"]
    assert first.key == "s" and first.timestamp == datetime.fromtimestamp(1, UTC)
    assert second.key is None and second.timestamp.year >= 2026


APP = """
import os
from collections.abc import Iterator
from pydantic import BaseModel
from streamlets import Inlet, Meta, Outlet, Streamlet


class Tick(BaseModel):
    sensor: str
    seq: int


class Seen(BaseModel):
    sensor: str
    seq: int
    instance: str
    partition: int


class Ticks(Streamlet):
    out = Outlet(Tick, key="sensor")

    def generate(self) -> Iterator[Tick]:
        for seq in range(200):
            for sensor in ("s-1", "s-2", "s-3", "s-4", "s-5", "s-12", "s-13"):  # partitions 0-2
                yield Tick(sensor=sensor, seq=seq)


class Note(Streamlet):
    ticks = Inlet(Tick)
    out = Outlet(Seen)

    def process(self, tick: Tick, meta: Meta) -> Seen:
        return Seen(sensor=tick.sensor, seq=tick.seq, instance=str(id(self)),
                    partition=meta.partition)


class Unkeyed(Streamlet):
    ticks = Inlet(Tick)
    out = Outlet(Tick)

    def process(self, tick: Tick) -> Tick | None:
        if tick.seq == 0:
            return self.out.emit(tick, key=None)
        return tick
"""


def write(tmp_path: Path, blueprint: str) -> Path:
    (tmp_path / "keys_app.py").write_text(APP)
    path = tmp_path / "blueprint.yaml"
    path.write_text(textwrap.dedent(blueprint).lstrip())
    return path


def test_records_of_a_key_keep_their_order_on_their_murmur2_partition_with_replicas(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        """
        name: keys
        streamlets:
          ticks: {class: keys_app:Ticks}
          note: {class: keys_app:Note, replicas: 3}
        topics:
          ticks: {producers: [ticks.out], consumers: [note.ticks], partitions: 3}
          seen: {producers: [note.out]}
        """,
    )
    result = run_blueprint(path, collect=["seen"])
    assert result.error is None
    seen = result.topics["seen"]
    assert len(seen) == 7 * 200
    by_sensor: dict[str, list[Any]] = {}
    for row in seen:
        by_sensor.setdefault(row.sensor, []).append(row)
    for sensor, rows in by_sensor.items():
        assert [r.seq for r in rows] == list(range(200))  # per-key order
        assert {r.instance for r in rows} == {rows[0].instance}  # one replica per key
        assert {r.partition for r in rows} == {partition_for(sensor.encode(), 3)}
    assert len({r.instance for r in seen}) == 3  # each replica had a partition
    # The outputs kept their inputs' keys.
    assert {r.key for r in result.records["seen"]} == set(by_sensor)


def test_a_keyless_record_for_a_compacted_topic_is_dead_lettered(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        name: compacted
        streamlets:
          ticks: {class: keys_app:Ticks}
          pass: {class: keys_app:Unkeyed}
        topics:
          ticks: {producers: [ticks.out], consumers: [pass.ticks]}
          latest:
            producers: [pass.out]
            config: {cleanup.policy: compact}
        """,
    )
    result = run_blueprint(path, collect=["latest"])
    assert result.error is None
    assert len(result.topics["latest"]) == 7 * 199  # every keyed record
    assert len(result.dead_letters) == 7
    letter = result.dead_letters[0]
    assert letter.stage == "encode" and letter.error_class == "KeylessRecord"
    assert "is compacted" in letter.error_message and "key" in letter.error_message
    assert letter.original.key is not None  # the input, with the key it had


def test_dead_letters_keep_the_original_key_and_headers(tmp_path: Path) -> None:
    result = run_streamlet(
        Sees, {"readings": [Raw(b"\xff not avro", headers=(("trace", b"t-1"),))]}
    )
    (letter,) = result.dead_letters
    assert letter.original.headers == (("trace", b"t-1"),)
    data = letter.as_json()
    assert data["headers"] == {"trace": "t-1"} and data["key"] is None
    keyed = run_streamlet(Sees, {"readings": [Raw(b"junk", key=b"k1")]})
    assert keyed.dead_letters[0].as_json()["key"] == "k1"
    json.dumps(keyed.dead_letters[0].as_json())  # JSON-able
