"""Streamlets of the window and timer tests on Kafka: a bounded source of keyed events
with event times in a field, and a streamlet with a timer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from streamlets import Inlet, Outlet, Streamlet, timer

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


class Events(Streamlet):
    out = Outlet(Event, key="sensor")

    class Config(BaseModel):
        count: int = 300

    config: Config

    def generate(self) -> Iterator[Event]:
        yield from events(self.config.count)


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
