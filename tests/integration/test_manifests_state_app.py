"""A third application for the manifest tests: stateful streamlets (DESIGN §8).

A stateful source run as a Job with a state size (a generic ephemeral volume), a
replicated stateful streamlet without one (an ``emptyDir``), an exactly-once stateful
streamlet with one (a claim per pod) and a stateless sink. ``write_counters_app`` writes it
into a directory; the other manifest tests deploy it.
"""

from __future__ import annotations

from pathlib import Path

from blueprint import verify

MODULE = '''
from collections.abc import Iterator

from pydantic import BaseModel

from streamlets import Inlet, Outlet, State, Streamlet


class Reading(BaseModel):
    sensor_id: str
    value: float


class Positioned(Streamlet):
    """A source that keeps its position, so that a restart goes on from there."""

    out = Outlet(Reading, key="sensor_id")
    position = State(int, default=0)

    def generate(self) -> Iterator[Reading]:
        for i in range(self.position.get(), 100):
            self.position.set(i + 1)
            yield Reading(sensor_id=f"s{i % 5}", value=float(i))


class Counter(Streamlet):
    """Counts the readings of each sensor and keeps its last one."""

    readings = Inlet(Reading)
    out = Outlet(Reading)
    seen = State(int, default=0)
    last_reading = State(Reading)

    def process(self, reading: Reading) -> Reading:
        self.seen.set(self.seen.get() + 1)
        self.last_reading.set(reading)
        return reading


class Plain(Streamlet):
    readings = Inlet(Reading)

    def process(self, reading: Reading) -> None:
        return None
'''

BLUEPRINT = """\
name: counters
streamlets:
  source:
    class: counters_app:Positioned
    state: {storage: 512Mi}
  count:
    class: counters_app:Counter
    replicas: 3
  once:
    class: counters_app:Counter
    processing: exactly-once
    state: {storage: 5Gi}
  sink:
    class: counters_app:Plain
topics:
  readings:
    producers: [source.out]
    consumers: [count.readings, once.readings]
    partitions: 6
    replication_factor: 3
  counted:
    producers: [count.out, once.out]
    consumers: [sink.readings]
"""


def write_counters_app(directory: Path) -> Path:
    """Write the counters application; returns the blueprint's path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "counters_app.py").write_text(MODULE, encoding="utf-8")
    blueprint = directory / "blueprint.yaml"
    blueprint.write_text(BLUEPRINT, encoding="utf-8")
    return blueprint


def test_counters_app_verifies(tmp_path: Path) -> None:
    result = verify(write_counters_app(tmp_path / "counters")).unwrap()
    assert result.problems == ()
    assert {n for n, s in result.streamlets.items() if s.stateful} == {"source", "count", "once"}
    assert result.streamlets["once"].state_storage == "5Gi"
