"""The scorer: batches records across ``process`` calls, bounds requests in flight, retries.

Each ``process`` call hands one model input to :meth:`Scorer.score` and awaits its own
prediction. Inputs gather into a batch until ``batch_size`` are waiting or ``max_wait``
passes since the first; a batch waits for one of ``concurrency`` request slots, then for
a ready backend. The runner awaits ``process`` calls in input order, so results leave in
input order however requests complete.

Faults:

- connection failures (server down, restarting): the backend is marked not ready and the
  batch waits for readiness, probing with backoff, for as long as it takes; records are
  held (the runner's bounded queues push back), none is lost;
- timeouts and 429/502/503/504: retried ``retries`` times with backoff and jitter, then
  the records fail with :class:`~streamlets.serving.errors.ModelUnavailable`;
- the model refusing a batch (any other error status, or inputs that do not stack): the
  batch is split in halves and each half retried, down to the single bad record, which
  fails with :class:`~streamlets.serving.errors.ModelRejected` carrying the server's message;
- a control record switching the backend: batches not yet answered go to the new one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from streamlets.serving.backends import Backend, BatchRejected, TransientStatus
from streamlets.serving.errors import (
    ModelRejected,
    ModelUnavailable,
    ServingError,
    TransportError,
)
from streamlets.serving.metrics import ServingMetrics
from streamlets.serving.model_info import ModelInfo
from streamlets.serving.retry import Backoff

__all__ = ["Part", "Scored", "Scorer", "ScorerSettings"]

log = logging.getLogger("streamlets.serving")


@dataclass(frozen=True, slots=True)
class ScorerSettings:
    """Batching, concurrency and fault settings (from the streamlet's config)."""

    batch_size: int = 1024
    max_wait: float = 0.005
    concurrency: int = 4
    timeout: float = 30.0
    retries: int = 5
    backoff: Backoff = field(default_factory=Backoff)


class Scored:
    """Outcomes of many inputs, in input order: ``predictions[i]`` and ``infos[i]`` for an
    input that was scored, ``errors[i]`` for one that failed (its prediction is ``None``)."""

    __slots__ = ("errors", "infos", "predictions")

    def __init__(
        self, predictions: list[Any], infos: list[Any], errors: dict[int, BaseException]
    ) -> None:
        self.predictions = predictions
        self.infos = infos
        self.errors = errors


class _Batch:
    """Inputs sent in one request and, once answered, their outcomes by position.

    No object per input: predictions and model infos are lists parallel to ``values``
    (filled left to right, so positions below ``settled`` have their outcome) and failed
    positions are in ``errors``. ``done`` resolves once every position is settled.
    """

    __slots__ = ("done", "errors", "infos", "predictions", "settled", "values")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.values: list[Any] = []
        self.predictions: list[Any] = []
        self.infos: list[Any] = []  # ModelInfo, or None where not (yet) scored
        self.errors: dict[int, BaseException] = {}
        self.settled = 0
        self.done: asyncio.Future[None] = loop.create_future()

    def answer(self, start: int, predictions: list[Any], info: ModelInfo) -> None:
        """Positions ``start..start+len(predictions)`` were scored by ``info``'s model."""
        stop = start + len(predictions)
        if start == 0 and stop == len(self.values):
            self.predictions = predictions
            self.infos = [info] * stop
        else:
            self._room()
            self.predictions[start:stop] = predictions
            self.infos[start:stop] = [info] * (stop - start)
        self.settled = stop

    def fail(self, start: int, stop: int, error: BaseException) -> None:
        """Positions ``start..stop`` failed with ``error``."""
        self._room()
        for index in range(start, stop):
            self.errors[index] = error
        self.settled = stop

    def _room(self) -> None:
        if len(self.predictions) != len(self.values):
            self.predictions = [None] * len(self.values)
            self.infos = [None] * len(self.values)


class Part:
    """The inputs of one :meth:`Scorer.submit` call that went into one batch."""

    __slots__ = ("batch", "count", "offset")

    def __init__(self, batch: _Batch, offset: int, count: int) -> None:
        self.batch, self.offset, self.count = batch, offset, count

    async def outcome(self) -> Scored:
        """Wait for the batch's answer; the outcomes of this part's inputs, in order."""
        batch = self.batch
        if not batch.done.done():
            await asyncio.shield(batch.done)  # a cancelled caller must not cancel the batch
        start, stop = self.offset, self.offset + self.count
        if start == 0 and stop == len(batch.values):
            return Scored(batch.predictions, batch.infos, batch.errors)
        errors = {i - start: e for i, e in batch.errors.items() if start <= i < stop}
        return Scored(batch.predictions[start:stop], batch.infos[start:stop], errors)


class Scorer:
    """Scores model inputs against the current backend in batches; see the module docs."""

    def __init__(self, settings: ScorerSettings, metrics: ServingMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or ServingMetrics()
        self._backend: Backend | None = None
        self._available = asyncio.Event()
        self._pending: _Batch | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    # -- state -----------------------------------------------------------------------------

    @property
    def backend(self) -> Backend | None:
        """The backend new batches go to (``None`` until one is configured)."""
        return self._backend

    def switch(self, backend: Backend) -> Backend | None:
        """Make ``backend`` current; returns the previous one (now retired)."""
        previous, self._backend = self._backend, backend
        self._available.set()
        if previous is not None and previous is not backend:
            previous.retired.set()
        return previous

    async def _current(self) -> Backend:
        while self._backend is None:
            await self._available.wait()
        return self._backend

    # -- batching --------------------------------------------------------------------------

    def _open(self, loop: asyncio.AbstractEventLoop) -> _Batch:
        """The batch being filled (a new one, with its ``max_wait`` timer, when none is)."""
        batch = self._pending
        if batch is None:
            batch = self._pending = _Batch(loop)
            self._timer = loop.call_later(self.settings.max_wait, self._flush)
        return batch

    async def score(self, value: Any) -> tuple[Any, ModelInfo]:
        """The prediction for one model input, and which model made it.

        Raises the record's error (:class:`~streamlets.serving.errors.ModelRejected`, ...).
        """
        batch = self._open(asyncio.get_running_loop())
        index = len(batch.values)
        batch.values.append(value)
        if index + 1 >= self.settings.batch_size:
            self._flush()
        await asyncio.shield(batch.done)  # a cancelled caller must not cancel the batch
        error = batch.errors.get(index)
        if error is not None:
            raise error
        info: ModelInfo = batch.infos[index]
        return batch.predictions[index], info

    def submit(self, values: Sequence[Any]) -> list[Part]:
        """Queue many inputs at once; returns their parts, in input order, to await.

        The inputs join the batch being filled and make new ones; the last, partial batch is
        sent at once rather than after ``max_wait``, since the caller has no more inputs.
        Awaiting the parts one by one lets a caller use the first answers while later
        batches are still in flight.
        """
        loop = asyncio.get_running_loop()
        parts: list[Part] = []
        size = self.settings.batch_size
        start = 0
        while start < len(values):  # fill the open batch, then whole new ones
            batch = self._open(loop)
            offset = len(batch.values)
            chunk = values[start : start + size - offset]
            batch.values.extend(chunk)
            start += len(chunk)
            parts.append(Part(batch, offset, len(chunk)))
            self._flush()  # full, or the last one: the caller has no more inputs
        return parts

    async def score_many(self, values: Sequence[Any]) -> Scored:
        """Predictions for many inputs at once, in order; a failed input gets its error."""
        predictions: list[Any] = []
        infos: list[Any] = []
        errors: dict[int, BaseException] = {}
        for part in self.submit(values):
            scored = await part.outcome()
            base = len(predictions)
            predictions.extend(scored.predictions)
            infos.extend(scored.infos)
            for index, error in scored.errors.items():
                errors[base + index] = error
        return Scored(predictions, infos, errors)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, None
        if batch is not None and batch.values:
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: _Batch) -> None:
        try:
            async with self._slots:
                await self._score_part(batch, 0, len(batch.values))
        except BaseException as exc:
            # A bug or a cancellation must not leave a record waiting forever.
            if batch.settled < len(batch.values):
                batch.fail(batch.settled, len(batch.values), exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            if not batch.done.done():
                batch.done.set_result(None)

    async def _score_part(self, batch: _Batch, start: int, stop: int) -> None:
        """Score positions ``start..stop`` of ``batch`` (the whole batch, or a half of a
        part the model refused)."""
        values = batch.values
        inputs = values if start == 0 and stop == len(values) else values[start:stop]
        try:
            predictions, info = await self._request(inputs)
        except BatchRejected as exc:
            if stop - start == 1:
                self.metrics.model(exc.model).rejected_records += 1
                error = ModelRejected(
                    f"the model {exc.model} rejected the record: {exc}",
                    model=exc.model,
                    status=exc.status,
                )
                batch.fail(start, stop, error)
                return
            # One bad record must not take its batch with it: halve until it is alone.
            middle = (start + stop) // 2
            await self._score_part(batch, start, middle)
            await self._score_part(batch, middle, stop)
            return
        except ModelUnavailable as exc:
            batch.fail(start, stop, exc)
            return
        if len(predictions) != stop - start:  # a backend bug: never pair records wrongly
            raise ServingError(
                f"model {info.label} answered {len(predictions)} predictions for "
                f"{stop - start} records"
            )
        batch.answer(
            start, predictions if isinstance(predictions, list) else list(predictions), info
        )

    async def _request(self, inputs: Sequence[Any]) -> tuple[list[Any], ModelInfo]:
        """One batch against the current backend, retried as the module docs say."""
        settings = self.settings
        transient = 0  # retries spent on timeouts and 429/5xx
        down = 0  # connection failures in a row (not limited)
        while True:
            backend = await self._current()
            label = backend.info.label
            if not await backend.wait_ready(settings.backoff, settings.timeout):
                continue  # switched away while waiting: go to the new backend
            try:
                predictions, info = await backend.predict(inputs, settings.timeout)
            except TransportError as exc:
                metrics = self.metrics.model(label)
                metrics.errors += 1
                if exc.timeout:
                    transient += 1
                    if transient > settings.retries:
                        raise ModelUnavailable(
                            f"model {label}: {exc}; gave up after {settings.retries} "
                            "retries (raise timeout_s or retries)"
                        ) from exc
                    delay = settings.backoff.delay(transient - 1)
                else:
                    backend.mark_unready()
                    down += 1
                    delay = settings.backoff.delay(down - 1)
                    if down == 1:
                        log.warning("model %s: %s; holding records until it is back", label, exc)
                metrics.retries += 1
                await asyncio.sleep(delay)
                continue
            except TransientStatus as exc:
                metrics = self.metrics.model(label)
                metrics.errors += 1
                transient += 1
                if transient > settings.retries:
                    raise ModelUnavailable(
                        f"{exc}; gave up after {settings.retries} retries"
                    ) from exc
                metrics.retries += 1
                await asyncio.sleep(settings.backoff.delay(transient - 1))
                continue
            except BatchRejected as exc:
                self.metrics.model(label).errors += 1
                exc.model = label
                raise
            self.metrics.request(label, len(inputs), info.latency_s)
            return predictions, info

    # -- lifecycle -------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Send what is pending, wait for every batch in flight, then close the backend."""
        self._flush()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._backend is not None:
            await self._backend.aclose()
