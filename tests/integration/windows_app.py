"""Streamlets of the window and timer tests on Kafka: bounded sources of keyed events
with event times in a field, a windowed count and sum per key that can be slowed down
(for the SIGKILL tests), and a streamlet with a timer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from streamlets import Inlet, Outlet, Streamlet, Windowed, timer
from streamlets.windows import Count, Sum, Tumbling, Window

BASE = 1_700_000_000_000


class Event(BaseModel):
    sensor: str
    at: int  # epoch ms
    value: int


def events(count: int) -> list[Event]:
    """The events the source makes: 5 sensors, a second apart, some out of order."""
    out = []
    for i in range(count):
        jitter = -70_000 if i % 11 == 5 else 0
        out.append(Event(sensor=f"s{i % 5}", at=BASE + i * 1000 + jitter, value=i % 17))
    return out


def steady_events(start: int, stop: int) -> list[Event]:
    """Events ``start`` to ``stop`` (exclusive) of 6 sensors in turn, a tenth of a second
    apart, none out of order: event ``i`` is of sensor ``i % 6``, at ``i`` tenths of a
    second after ``BASE``."""
    return [Event(sensor=f"s{i % 6}", at=BASE + i * 100, value=i % 17) for i in range(start, stop)]


class Events(Streamlet):
    out = Outlet(Event, key="sensor")

    class Config(BaseModel):
        count: int = 300

    config: Config

    def generate(self) -> Iterator[Event]:
        yield from events(self.config.count)


class SteadyEvents(Streamlet):
    """A bounded source of ``steady_events(0, count)``, keyed by sensor."""

    out = Outlet(Event, key="sensor")

    class Config(BaseModel):
        count: int = 3000

    def generate(self) -> Iterator[Event]:
        yield from steady_events(0, self.config.count)


class Reports(BaseModel):
    seen: int
    calls: int


class Reporter(Streamlet):
    """Counts events; reports the count every 0.2 s."""

    events = Inlet(Event)
    reports = Outlet(Reports)

    def setup(self) -> None:
        self.seen = 0
        self.calls = 0

    def process(self, event: Event) -> None:
        self.seen += 1

    @timer(seconds=0.2)
    def report(self) -> Any:
        self.calls += 1
        return Reports(seen=self.seen, calls=self.calls)


class Tally(BaseModel):
    sensor: str
    start: int  # epoch ms
    n: int
    total: int


class Tallies(Streamlet):
    """The count and sum of each sensor's values per 10 s of event time (tumbling, no
    grace, emitted when they close); sleeps ``delay`` s per record."""

    events = Inlet(Event, timestamp="at")
    tallies = Outlet(Tally)
    per_ten = Window(Tumbling("10s"), {"n": Count(), "total": Sum("value")})

    class Config(BaseModel):
        delay: float = 0.0

    def process(self, event: Event) -> None:
        if self.config.delay:
            time.sleep(self.config.delay)

    @per_ten.on_close
    def tally(self, window: Windowed[dict[str, Any]]) -> Tally:
        return Tally(sensor=window.key, start=window.start_ms, **window.value)
