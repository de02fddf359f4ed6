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

    batch_size: int = 32
    max_wait: float = 0.005
    concurrency: int = 4
    timeout: float = 30.0
    retries: int = 5
    backoff: Backoff = field(default_factory=Backoff)


class _Item:
    __slots__ = ("future", "value")

    def __init__(self, value: Any, future: asyncio.Future[tuple[Any, ModelInfo]]) -> None:
        self.value = value
        self.future = future


class Scorer:
    """Scores model inputs against the current backend in batches; see the module docs."""

    def __init__(self, settings: ScorerSettings, metrics: ServingMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or ServingMetrics()
        self._backend: Backend | None = None
        self._available = asyncio.Event()
        self._pending: list[_Item] = []
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

    async def score(self, value: Any) -> tuple[Any, ModelInfo]:
        """The prediction for one model input, and which model made it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Any, ModelInfo]] = loop.create_future()
        self._pending.append(_Item(value, future))
        if len(self._pending) >= self.settings.batch_size:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.settings.max_wait, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[_Item]) -> None:
        try:
            async with self._slots:
                await self._score_batch(batch)
        except BaseException as exc:
            # A bug or a cancellation must not leave a process() call waiting forever.
            for item in batch:
                if not item.future.done():
                    if isinstance(exc, asyncio.CancelledError):
                        item.future.cancel()
                    else:
                        item.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise

    async def _score_batch(self, batch: list[_Item]) -> None:
        live = [item for item in batch if not item.future.done()]
        if not live:
            return
        try:
            predictions, info = await self._request([item.value for item in live])
        except BatchRejected as exc:
            if len(live) == 1:
                self.metrics.model(exc.model).rejected_records += 1
                live[0].future.set_exception(
                    ModelRejected(
                        f"the model {exc.model} rejected the record: {exc}",
                        model=exc.model,
                        status=exc.status,
                    )
                )
                return
            # One bad record must not take its batch with it: halve until it is alone.
            middle = len(live) // 2
            await self._score_batch(live[:middle])
            await self._score_batch(live[middle:])
            return
        except ModelUnavailable as exc:
            for item in live:
                item.future.set_exception(exc)
            return
        for item, prediction in zip(live, predictions, strict=True):
            if not item.future.done():
                item.future.set_result((prediction, info))

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
