"""Streamlets that wait, block and fail in their hooks, for the run-lifecycle tests.

Each writes what happened to files named in its config, so that a test can look from
outside the process: ``marker`` gets a line when ``teardown()`` runs.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from pydantic import BaseModel

from streamlets import Inlet, Outlet, Streamlet
from streamlets.library import HttpIngress
from streamlets.library.http import HttpIngressConfig


class Tick(BaseModel):
    source: str
    index: int
    at: float  # time.time() when the source yielded it


def _mark(path: Path | None, text: str) -> None:
    if path is not None:
        with path.open("a", encoding="utf-8") as fh:
            fh.write(text + "\n")


class SlowSource(Streamlet):
    """A sync source that blocks ``sleep_s`` before each record, as a blocking call would."""

    out = Outlet(Tick)

    class Config(BaseModel):
        sleep_s: float = 0.5
        count: int | None = None  # None: endless
        marker: Path | None = None

    config: Config

    def generate(self) -> Iterator[Tick]:
        index = 0
        while self.config.count is None or index < self.config.count:
            time.sleep(self.config.sleep_s)
            yield Tick(source=self.name, index=index, at=time.time())
            index += 1

    def teardown(self) -> None:
        _mark(self.config.marker, f"teardown {self.name}")


class MarkedIngress(HttpIngress):
    """The library's HTTP ingress, with a teardown() that leaves a marker."""

    class Config(HttpIngressConfig):
        marker: Path | None = None

    config: Config

    def teardown(self) -> None:
        _mark(self.config.marker, f"teardown {self.name}")


class Recorder(Streamlet):
    """Writes each tick with the time it arrived; marks teardown (or fails in it)."""

    ticks = Inlet(Tick)

    class Config(BaseModel):
        path: Path
        marker: Path | None = None
        fail_teardown: bool = False

    config: Config

    def setup(self) -> None:
        self.config.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.config.path.open("a", encoding="utf-8")

    def process(self, tick: Tick) -> None:
        row = {"source": tick.source, "index": tick.index, "delay": time.time() - tick.at}
        self._fh.write(json.dumps(row) + "\n")
        self._fh.flush()

    def teardown(self) -> None:
        self._fh.close()
        if self.config.fail_teardown:
            raise RuntimeError("cannot flush the sink")
        _mark(self.config.marker, f"teardown {self.name}")


class DrainingSource(Streamlet):
    """Accepts ``count`` records at once and hands them over slowly; on_stop() makes it
    hand over the rest and end, as an ingress that answered "accepted" must."""

    out = Outlet(Tick)

    class Config(BaseModel):
        count: int = 20
        every_s: float = 0.05

    config: Config

    async def generate(self) -> AsyncIterator[Tick]:
        self._queue: asyncio.Queue[Tick | None] = asyncio.Queue()
        for index in range(self.config.count):
            self._queue.put_nowait(Tick(source=self.name, index=index, at=time.time()))
        while True:
            item = await self._queue.get()
            if item is None:
                return
            await asyncio.sleep(self.config.every_s)
            yield item

    async def on_stop(self) -> None:  # on the loop, as the queue needs
        self._queue.put_nowait(None)  # after what was accepted


class Echo(Streamlet):
    """Passes each tick on (wired to its own topic: a cycle)."""

    ticks = Inlet(Tick)
    out = Outlet(Tick)

    def process(self, tick: Tick) -> Tick:
        return tick
