"""Streamlets for tests/integration/test_kafka_keys.py (copied next to each test's
blueprint): what a handler sees in ``Meta``, keyed outputs, and a keyless source."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from streamlets import Inlet, Meta, Outlet, Streamlet

#: An Avro-dict record type: a streamlet that returns its input passes the bytes on.
ITEM = {
    "type": "record",
    "name": "KeyedItem",
    "fields": [{"name": "id", "type": "long"}, {"name": "sensor", "type": "string"}],
}


class Reading(BaseModel):
    sensor: str
    seq: int


class Alert(BaseModel):
    sensor: str
    seq: int


def _append(path: Path, row: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(json.dumps(row) + "\n")


def _seen(meta: Meta, reading: Reading) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "sensor": reading.sensor,
        "seq": reading.seq,
        "key": meta.key,
        "raw_key": None if meta.raw_key is None else meta.raw_key.hex(),
        "timestamp": meta.timestamp.isoformat(),
        "timestamp_ms": meta.timestamp_ms,
        "headers": {k: v.decode() for k, v in meta.headers.items()},
        "topic": meta.topic,
        "partition": meta.partition,
        "offset": meta.offset,
    }


class Witness(Streamlet):
    """Appends what it saw of each reading (its Meta) to a file; passes on a new record."""

    readings = Inlet(Reading)
    alerts = Outlet(Alert)

    class Config(BaseModel):
        path: str

    def process(self, reading: Reading, meta: Meta) -> Alert:
        _append(Path(self.config.path), _seen(meta, reading))
        return Alert(sensor=reading.sensor, seq=reading.seq)


class Note(Streamlet):
    """Witness for replicas: each process appends to a file of its own (``dir/<pid>``)."""

    readings = Inlet(Reading)
    alerts = Outlet(Alert)

    class Config(BaseModel):
        dir: str

    def process(self, reading: Reading, meta: Meta) -> Alert:
        _append(Path(self.config.dir) / f"{os.getpid()}.jsonl", _seen(meta, reading))
        return Alert(sensor=reading.sensor, seq=reading.seq)


class Forward(Streamlet):
    """Returns its Avro dict unchanged: its bytes go out as they came."""

    inp = Inlet(ITEM)
    out = Outlet(ITEM)

    def process(self, item: dict[str, Any]) -> dict[str, Any]:
        return item


class KeyBySensor(Streamlet):
    """Its outlet declares the key: the reading's sensor."""

    readings = Inlet(Reading)
    alerts = Outlet(Alert, key="sensor")

    def process(self, reading: Reading) -> Alert:
        return Alert(sensor=reading.sensor, seq=reading.seq)


class Relay(Streamlet):
    """A new record from each reading; its outlet declares no key (outputs inherit)."""

    readings = Inlet(Reading)
    alerts = Outlet(Alert)

    def process(self, reading: Reading) -> Alert:
        return Alert(sensor=reading.sensor, seq=reading.seq)


class Ticks(Streamlet):
    """``count`` readings of each sensor, round-robin; keyless, or keyed ``key_prefix +
    sensor`` with ``emit(key=)``. With ``go_file``, waits until that file exists."""

    out = Outlet(Reading)

    class Config(BaseModel):
        sensors: list[str]
        count: int = 50
        keyed: bool = False
        key_prefix: str = ""
        go_file: str | None = None

    def generate(self) -> Iterator[Any]:
        if self.config.go_file is not None:
            while not Path(self.config.go_file).exists():
                time.sleep(0.05)
        for seq in range(self.config.count):
            for sensor in self.config.sensors:
                reading = Reading(sensor=sensor, seq=seq)
                if self.config.keyed:
                    yield self.out.emit(reading, key=self.config.key_prefix + sensor)
                else:
                    yield reading
