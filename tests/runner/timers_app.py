"""Streamlets with timers for the timer tests (in-process and on Kafka)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel

from streamlets import Inlet, Outlet, Streamlet, timer


class Tick(BaseModel):
    n: int


class Seen(BaseModel):
    seen: int
    calls: int


class SlowSource(Streamlet):
    """``count`` records, ``pause`` seconds apart."""

    out = Outlet(Tick)

    class Config(BaseModel):
        count: int = 15
        pause: float = 0.02

    config: Config

    async def generate(self) -> AsyncIterator[Tick]:
        for n in range(self.config.count):
            yield Tick(n=n)
            await asyncio.sleep(self.config.pause)


class Counting(Streamlet):
    """Counts what it reads; its timer reports the count so far."""

    ticks = Inlet(Tick)
    seen = Outlet(Seen)

    class Config(BaseModel):
        fail: bool = False

    config: Config

    def setup(self) -> None:
        self.count = 0
        self.calls = 0

    def process(self, tick: Tick) -> None:
        self.count += 1

    @timer(seconds=0.05)
    def report(self) -> Any:
        self.calls += 1
        if self.config.fail and self.calls == 1:
            raise RuntimeError("the first report fails")
        return Seen(seen=self.count, calls=self.calls)


class TickingSource(Streamlet):
    """A source whose async timer reports how many records it has made."""

    out = Outlet(Tick)
    reports = Outlet(Seen)

    def setup(self) -> None:
        self.made = 0
        self.calls = 0

    async def generate(self) -> AsyncIterator[Any]:
        for n in range(20):
            self.made += 1
            yield self.out.emit(Tick(n=n))
            await asyncio.sleep(0.02)

    @timer(seconds=0.05)
    async def report(self) -> Any:
        self.calls += 1
        await asyncio.sleep(0)
        return self.reports.emit(Seen(seen=self.made, calls=self.calls))
