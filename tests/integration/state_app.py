"""Streamlets for tests/integration/test_kafka_state.py (copied next to each test's
blueprint): a keyed source that keeps its position, a per-key counter, a file sink."""

from __future__ import annotations

import time
from collections.abc import Iterator

from pydantic import BaseModel

from streamlets import Inlet, Meta, Outlet, State, Streamlet


class Event(BaseModel):
    key: str
    seq: int


class Count(BaseModel):
    key: str
    seq: int
    count: int


class Events(Streamlet):
    """`count` events over `keys` keys, keyed; resumes at its position."""

    out = Outlet(Event, key="key")
    position = State(int, default=0)

    class Config(BaseModel):
        count: int = 3000
        keys: int = 20
        delay: float = 0.0

    def generate(self) -> Iterator[Event]:
        for i in range(self.position.get(), self.config.count):
            self.position.set(i + 1)
            if self.config.delay:
                time.sleep(self.config.delay)
            yield Event(key=f"k{i % self.config.keys}", seq=i)


class Counter(Streamlet):
    """A count per key."""

    events = Inlet(Event)
    out = Outlet(Count)
    seen = State(int, default=0)

    class Config(BaseModel):
        delay: float = 0.0

    def process(self, event: Event, meta: Meta) -> Count:
        n = self.seen.get() + 1
        self.seen.set(n)
        if self.config.delay:
            time.sleep(self.config.delay)
        return Count(key=event.key, seq=event.seq, count=n)


class CountFile(Streamlet):
    """Appends each count as 'key seq count'."""

    counts = Inlet(Count)

    class Config(BaseModel):
        path: str

    def setup(self) -> None:
        self._file = open(self.config.path, "a", encoding="utf-8")  # noqa: SIM115

    def process(self, c: Count) -> None:
        self._file.write(f"{c.key} {c.seq} {c.count}\n")

    def flush(self) -> None:
        self._file.flush()

    def teardown(self) -> None:
        self._file.close()
