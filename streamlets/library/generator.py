"""Generator source: N records (or an endless stream), optionally at a fixed rate."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, ImportString

from streamlets.library._schema_config import RecordSchemaConfig, SchemaValue
from streamlets.ports import FromConfig, Outlet
from streamlets.state import State
from streamlets.streamlet import Streamlet

__all__ = ["Counter", "GeneratorSource"]


class Counter(BaseModel):
    """The record the generator makes by default: its index and when it was made."""

    index: int
    at: datetime


def _counter(index: int) -> Counter:
    return Counter(index=index, at=datetime.now(UTC))


class GeneratorSourceConfig(RecordSchemaConfig):
    """Config of :class:`GeneratorSource`."""

    record_schema: SchemaValue = Field(
        Counter,
        alias="schema",
        description="record type: a pydantic model 'module:Class' or an Avro schema mapping",
    )
    count: int | None = Field(
        1000, ge=0, description="how many records; null for an endless stream"
    )
    rate: float | None = Field(
        None, gt=0, description="records per second; default: as fast as the pipeline takes them"
    )
    factory: ImportString[Callable[[int], Any]] | None = Field(
        None,
        description="'module:function' called with the index (0, 1, ...) that returns a "
        "record; default: Counter records",
    )


class GeneratorSource(Streamlet):
    """Generates ``count`` records (or an endless stream), for demos, tests and benchmarks.

    By default the records are :class:`Counter` values (``index``, ``at``); set ``factory``
    to a function ``index -> record`` and ``schema`` to its type for other records. ``rate``
    limits the records per second; without it the pipeline's backpressure sets the pace.

    The index of the next record is kept as state: a restarted generator (on Kafka, or
    ``flow run-local --state-dir``) goes on after the last record that was delivered.
    """

    out = Outlet(FromConfig("record_schema"), description="the generated records")
    Config = GeneratorSourceConfig
    config: GeneratorSourceConfig
    next_index = State(int, default=0, description="the index of the next record")

    def is_bounded(self) -> bool:
        """Bounded unless ``count`` is ``null``."""
        return self.config.count is not None

    def generate(self) -> Iterator[Any] | AsyncIterator[Any]:
        """The records: a plain iterator at full speed, an async one when paced by ``rate``."""
        if self.config.rate is None:
            return self._unpaced()
        return self._paced(self.config.rate)

    def _indexes(self, start: int) -> Iterator[int]:
        count = self.config.count
        return iter(range(start, count)) if count is not None else itertools.count(start)

    def _unpaced(self) -> Iterator[Any]:
        make = self.config.factory or _counter
        position = self.next_index
        for index in self._indexes(position.get()):
            record = make(index)
            position.set(index + 1)  # where this record leaves the stream: kept with it
            yield record

    async def _paced(self, rate: float) -> AsyncIterator[Any]:
        make = self.config.factory or _counter
        position = self.next_index
        first = position.get()
        started = time.monotonic()
        for index in self._indexes(first):
            delay = started + (index - first) / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            record = make(index)
            position.set(index + 1)
            yield record
