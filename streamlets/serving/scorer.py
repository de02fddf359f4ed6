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
from streamlets.serving.errors import ModelRejected, ModelUnavailable, TransportError
from streamlets.serving.metrics import ServingMetrics
from streamlets.serving.model_info import ModelInfo
from streamlets.serving.retry import Backoff

__all__ = ["Scorer", "ScorerSettings"]

log = logging.getLogger("streamlets.serving")


@dataclass(frozen=True, slots=True)
class ScorerSettings:
    """Batching, concurrency and fault settings (from the streamlet's config)."""

    batch_size: int = 256
    max_wait: float = 0.005
    concurrency: int = 4
    timeout: float = 30.0
    retries: int = 5
    backoff: Backoff = field(default_factory=Backoff)


class _Item:
    """One model input and, once its batch is answered, its outcome."""

    __slots__ = ("error", "result", "value", "waiter")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.result: tuple[Any, ModelInfo] | None = None
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None  # only for score() of one input

    def settle(self, result: tuple[Any, ModelInfo] | None, error: BaseException | None) -> None:
        self.result, self.error = result, error
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    @property
    def settled(self) -> bool:
        return self.result is not None or self.error is not None


class _Batch:
    """Inputs sent in one request; ``done`` resolves once all of them are settled."""

    __slots__ = ("done", "items")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.items: list[_Item] = []
        self.done: asyncio.Future[None] = loop.create_future()


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

    def _add(self, item: _Item, loop: asyncio.AbstractEventLoop) -> _Batch:
        batch = self._pending
        if batch is None:
            batch = self._pending = _Batch(loop)
            self._timer = loop.call_later(self.settings.max_wait, self._flush)
        batch.items.append(item)
        if len(batch.items) >= self.settings.batch_size:
            self._flush()
        return batch

    async def score(self, value: Any) -> tuple[Any, ModelInfo]:
        """The prediction for one model input, and which model made it.

        Raises the record's error (:class:`~streamlets.serving.errors.ModelRejected`, ...).
        """
        loop = asyncio.get_running_loop()
        item = _Item(value)
        item.waiter = loop.create_future()
        self._add(item, loop)
        await item.waiter
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    async def score_many(
        self, values: Sequence[Any]
    ) -> list[tuple[Any, ModelInfo] | BaseException]:
        """Predictions for many inputs at once, in order; a failed input gets its error.

        The inputs join the batch being filled and make new ones; the last, partial batch is
        sent at once rather than after ``max_wait``, since the caller has no more inputs.
        """
        loop = asyncio.get_running_loop()
        items = [_Item(value) for value in values]
        batches: list[_Batch] = []
        size = self.settings.batch_size
        start = 0
        while start < len(items):  # fill the open batch, then whole new ones
            batch = self._pending
            if batch is None:
                batch = self._pending = _Batch(loop)
            room = size - len(batch.items)
            batch.items.extend(items[start : start + room])
            start += room
            batches.append(batch)
            self._flush()  # full, or the last one: the caller has no more inputs
        await asyncio.gather(*(b.done for b in batches))
        return [item.result if item.error is None else item.error for item in items]  # type: ignore[misc]

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, None
        if batch is not None and batch.items:
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: _Batch) -> None:
        try:
            async with self._slots:
                await self._score_batch(batch.items)
        except BaseException as exc:
            # A bug or a cancellation must not leave a record waiting forever.
            for item in batch.items:
                if not item.settled:
                    item.settle(None, exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            if not batch.done.done():
                batch.done.set_result(None)

    async def _score_batch(self, batch: list[_Item]) -> None:
        live = [item for item in batch if not item.settled]
        if not live:
            return
        try:
            predictions, info = await self._request([item.value for item in live])
        except BatchRejected as exc:
            if len(live) == 1:
                self.metrics.model(exc.model).rejected_records += 1
                error = ModelRejected(
                    f"the model {exc.model} rejected the record: {exc}",
                    model=exc.model,
                    status=exc.status,
                )
                live[0].settle(None, error)
                return
            # One bad record must not take its batch with it: halve until it is alone.
            middle = len(live) // 2
            await self._score_batch(live[:middle])
            await self._score_batch(live[middle:])
            return
        except ModelUnavailable as exc:
            for item in live:
                item.settle(None, exc)
            return
        for item, prediction in zip(live, predictions, strict=True):
            item.settle((prediction, info), None)

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
