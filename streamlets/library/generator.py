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
    """

    out = Outlet(FromConfig("record_schema"), description="the generated records")
    Config = GeneratorSourceConfig
    config: GeneratorSourceConfig

    def generate(self) -> Iterator[Any] | AsyncIterator[Any]:
        """The records: a plain iterator at full speed, an async one when paced by ``rate``."""
        if self.config.rate is None:
            return self._unpaced()
        return self._paced(self.config.rate)

    def _indexes(self) -> Iterator[int]:
        count = self.config.count
        return iter(range(count)) if count is not None else itertools.count()

    def _unpaced(self) -> Iterator[Any]:
        make = self.config.factory or _counter
        for index in self._indexes():
            yield make(index)

    async def _paced(self, rate: float) -> AsyncIterator[Any]:
        make = self.config.factory or _counter
        started = time.monotonic()
        for index in self._indexes():
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            yield make(index)
