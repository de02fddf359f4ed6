"""The batch sink: writes records to an outside system a batch at a time.

A runner hands a sink the records it has at hand (a batch consumed from Kafka, or from an
in-process topic) in one ``process_many`` call and commits their offsets only after the
call returns: every record of a batch is written (or dead-lettered) before its offset is
committed, so a crash at any moment loses nothing (at-least-once; effectively-once when
the writes are idempotent, as upserts on a key are).

A failed write is handled by what the failure says about the destination
(:meth:`BatchSink.classify`):

- ``unavailable`` (the destination cannot be reached: connection refused or lost, a
  timeout): the batch waits and is tried again, with backoff, for as long as it takes.
  Records are held, not dropped; the runner's bounded queues push back meanwhile.
- ``retry`` (a failure that may pass: a deadlock, a server error): tried again up to
  ``retries`` times with backoff, then isolated as below.
- ``reject`` (the data: a constraint violation, a value the destination refuses): the
  batch's records are written one at a time, so that only the records that fail alone
  fail; each of those goes to the streamlet's error policy (dead letters by default) with
  the destination's message.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from streamlets.errors import StreamletsError
from streamlets.library._schema_config import RecordSchemaConfig
from streamlets.ports import FromConfig, Inlet
from streamlets.streamlet import Streamlet

__all__ = [
    "BatchSink",
    "BatchSinkConfig",
    "Failure",
    "SinkError",
    "SinkRecordError",
    "SinkUnavailable",
]

log = logging.getLogger("streamlets.library.sinks")

#: What a failed write says about the destination (see the module docstring).
Failure = Literal["unavailable", "retry", "reject"]

#: Seconds between repeated "still unavailable" warnings of one sink.
_WARN_EVERY_S = 30.0


class SinkError(StreamletsError):
    """A sink could not write records."""


class SinkUnavailable(SinkError):
    """The sink's destination cannot be reached; the records wait for it."""


class SinkRecordError(SinkError):
    """One record cannot be written as it is (its values do not fit the destination)."""


class BatchSinkConfig(RecordSchemaConfig):
    """Config of a :class:`BatchSink` (subclasses add their destination's keys)."""

    batch_size: int = Field(
        1000, ge=1, le=1_000_000, description="most records written in one batch"
    )
    retries: int = Field(
        3,
        ge=0,
        description="retries of a batch whose write failed (not for an unreachable "
        "destination, which is waited for) before its records are written one by one",
    )
    backoff_initial_s: float = Field(
        0.1, gt=0, description="first wait before a retry; it doubles up to backoff_max_s"
    )
    backoff_max_s: float = Field(5.0, gt=0, description="longest wait between retries")


class BatchSink(Streamlet):
    """Base class of sinks that write batches of records to an outside system.

    Subclass it and implement :meth:`write_batch` (all records, or none: one transaction
    or one request), and optionally :meth:`classify` to tell the destination's failures
    apart. The inlet is ``records``; its schema comes from the ``schema`` config parameter
    unless a subclass declares ``records = Inlet(MyRecord)``. The module docstring says
    what happens when a write fails.
    """

    records: Inlet[Any] = Inlet(FromConfig("record_schema"), description="the records to write")
    Config: ClassVar[type[BaseModel]] = BatchSinkConfig
    config: BatchSinkConfig

    #: Runners hand the records of a batch to ``process_many`` in one call.
    concurrency: ClassVar[int] = 1

    _unavailable_since: float | None = None
    _warned_at: float = 0.0

    # -- what subclasses implement -------------------------------------------------------

    async def write_batch(self, records: Sequence[Any]) -> None:
        """Write ``records`` (in order) in one go, all or none; raise when that fails."""
        raise NotImplementedError(f"{type(self).__name__} does not implement write_batch()")

    def classify(self, error: Exception) -> Failure:
        """What ``error``, raised by :meth:`write_batch`, says about the destination.

        The default: :class:`SinkUnavailable`, connection errors and timeouts mean
        ``unavailable``, :class:`SinkRecordError` ``reject``, anything else ``retry``.
        """
        if isinstance(error, SinkUnavailable | ConnectionError | TimeoutError):
            return "unavailable"
        if isinstance(error, SinkRecordError):
            return "reject"
        return "retry"

    def destination(self) -> str:
        """The destination as log lines name it (never with credentials)."""
        return type(self).__name__

    # -- what the runner calls -----------------------------------------------------------

    async def process(self, record: Any) -> None:
        """Write one record (a batch of one); raise its failure."""
        (outcome,) = await self._deliver([record], isolate=False)
        if outcome is not None:
            raise outcome

    async def process_many(self, records: Sequence[Any]) -> list[BaseException | None]:
        """Write ``records`` in batches of at most ``batch_size``; one outcome per record,
        in order: ``None`` once written, or the exception that kept it out."""
        size = self.config.batch_size
        outcomes: list[BaseException | None] = []
        for start in range(0, len(records), size):
            outcomes.extend(await self._deliver(records[start : start + size], isolate=True))
        return outcomes

    # -- delivery ------------------------------------------------------------------------

    def _delay(self, attempt: int) -> float:
        """Exponential backoff with equal jitter (half fixed, half random)."""
        config = self.config
        full = min(config.backoff_max_s, config.backoff_initial_s * float(2 ** min(attempt, 30)))
        return full / 2 + random.uniform(0, full / 2)

    async def _deliver(self, batch: Sequence[Any], *, isolate: bool) -> list[BaseException | None]:
        retries = 0
        waits = 0
        while True:
            try:
                await self.write_batch(batch)
            except Exception as exc:
                kind = self.classify(exc)
                if kind == "unavailable":
                    self._note_unavailable(exc)
                    await asyncio.sleep(self._delay(waits))
                    waits += 1
                    continue
                self._note_available()
                if kind == "retry" and retries < self.config.retries:
                    log.info(
                        "%s: writing %d record(s) to %s failed (%s: %s); retrying",
                        self.name,
                        len(batch),
                        self.destination(),
                        type(exc).__name__,
                        exc,
                    )
                    await asyncio.sleep(self._delay(retries))
                    retries += 1
                    continue
                if isolate and len(batch) > 1:
                    log.info(
                        "%s: a batch of %d record(s) failed (%s: %s); writing them one by "
                        "one to find the record(s) at fault",
                        self.name,
                        len(batch),
                        type(exc).__name__,
                        exc,
                    )
                    return [(await self._deliver([r], isolate=False))[0] for r in batch]
                return [exc] * len(batch)
            self._note_available()
            return [None] * len(batch)

    def _note_unavailable(self, exc: Exception) -> None:
        now = time.monotonic()
        if self._unavailable_since is None:
            self._unavailable_since = now
        if now - self._warned_at >= _WARN_EVERY_S:
            self._warned_at = now
            log.warning(
                "%s: %s cannot be reached (%s: %s); records wait until it can (nothing is "
                "dropped; logged once every %g s)",
                self.name,
                self.destination(),
                type(exc).__name__,
                exc,
                _WARN_EVERY_S,
            )

    def _note_available(self) -> None:
        since = self._unavailable_since
        if since is not None:
            self._unavailable_since, self._warned_at = None, 0.0
            log.warning(
                "%s: %s is reachable again after %.1f s",
                self.name,
                self.destination(),
                time.monotonic() - since,
            )
