"""Backends: where a batch of model inputs is scored (a model server, or a model in-process).

The current backend is the streamlet's state; a control record replaces it. A backend
scores one batch per :meth:`Backend.predict` call, once: retries, splitting and
ordering belong to :class:`~streamlets.serving.scorer.Scorer`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

from streamlets.serving.errors import ResponseTooLarge, ServingError, TransportError
from streamlets.serving.model_info import ModelInfo
from streamlets.serving.protocols import (
    BatchShapeError,
    InferenceProtocol,
    ProtocolError,
    Target,
    server_message,
)
from streamlets.serving.retry import Backoff
from streamlets.serving.transport import Transport

__all__ = [
    "TRANSIENT_STATUSES",
    "Backend",
    "BatchRejected",
    "PoolMember",
    "PooledBackend",
    "RemoteBackend",
    "TransientStatus",
]

log = logging.getLogger("streamlets.serving")

#: Statuses that mean "try again later", not "this input is wrong".
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})


class BatchRejected(ServingError):
    """The model refused a batch; ``message`` is the server's. Split to find the bad record."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.model = ""  # the label of the model that refused, set by the scorer


class TransientStatus(ServingError):
    """The server answered with a status worth retrying (429, 502, 503, 504)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class Backend(Protocol):
    """Scores batches of model inputs."""

    @property
    def info(self) -> ModelInfo:
        """Which model this backend is (latency and batch size left at 0)."""
        ...

    @property
    def retired(self) -> asyncio.Event:
        """Set once a newer backend replaced this one."""
        ...

    async def wait_ready(self, backoff: Backoff, timeout: float) -> bool:
        """Wait until the model can serve; ``False`` when the backend was retired first."""
        ...

    def mark_unready(self) -> None:
        """Say the server went away: the next request waits for readiness again."""
        ...

    async def predict(self, inputs: Sequence[Any], timeout: float) -> tuple[list[Any], ModelInfo]:
        """Score one batch. Raises :class:`BatchRejected` when the model refuses it,
        :class:`TransientStatus` or :class:`~streamlets.serving.errors.TransportError`
        when it is worth trying again."""
        ...

    async def aclose(self) -> None:
        """Release what the backend holds."""
        ...


async def _sleep_unless(event: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` or until ``event`` is set; ``True`` when the event was set."""
    try:
        await asyncio.wait_for(event.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


class RemoteBackend:
    """A model on a model server, spoken to with ``protocol`` over ``transport``."""

    #: Seconds between repeated "still not ready" warnings.
    WARN_EVERY = 30.0

    def __init__(
        self,
        target: Target,
        protocol: InferenceProtocol,
        transport: Transport,
        retired: asyncio.Event | None = None,
    ) -> None:
        self.target = target
        self.protocol = protocol
        self.transport = transport
        self._info = ModelInfo(target.model, target.version, protocol.name, target.url)
        self._ready = False
        self._probe = asyncio.Lock()
        self._retired = retired if retired is not None else asyncio.Event()
        self.in_flight = 0  # requests being answered now (a pool picks the least busy)

    @property
    def info(self) -> ModelInfo:
        """The configured model; the version is the server's when it reports one."""
        return self._info

    @property
    def retired(self) -> asyncio.Event:
        """Set once a control record switched to another backend."""
        return self._retired

    def mark_unready(self) -> None:
        """The next request probes readiness first (the server went away)."""
        self._ready = False

    async def wait_ready(self, backoff: Backoff, timeout: float) -> bool:
        """Probe the readiness URL until it says ready (one prober; others wait on it)."""
        if self._ready:
            return True
        async with self._probe:
            attempt = 0
            last_warning = 0.0
            url = self.protocol.ready_url(self.target)
            while not self._ready:
                if self._retired.is_set():
                    return False
                try:
                    response = await self.transport.request("GET", url, timeout=timeout)
                except (TransportError, ResponseTooLarge) as exc:
                    reason = str(exc)
                else:
                    if self.protocol.is_ready(response):
                        self._ready = True
                        if attempt:
                            log.warning("model %s is ready again", self.target.label)
                        break
                    reason = f"HTTP {response.status}: {server_message(response)}"
                now = time.monotonic()
                if now - last_warning >= self.WARN_EVERY:
                    last_warning = now
                    log.warning(
                        "model %s is not ready (%s); records wait until it is "
                        "(a control record can switch to another model)",
                        self.target.label,
                        reason,
                    )
                if await _sleep_unless(self._retired, backoff.delay(attempt)):
                    return False
                attempt += 1
        return True

    async def predict(self, inputs: Sequence[Any], timeout: float) -> tuple[list[Any], ModelInfo]:
        """Send one inference request for ``inputs``."""
        try:
            url, body = self.protocol.infer(self.target, inputs)
        except BatchShapeError as exc:
            raise BatchRejected(str(exc)) from exc
        start = time.perf_counter()
        self.in_flight += 1
        try:
            response = await self.transport.request("POST", url, body, timeout=timeout)
        except ResponseTooLarge as exc:
            raise BatchRejected(str(exc)) from exc  # halves of the batch answer less
        finally:
            self.in_flight -= 1
        elapsed = time.perf_counter() - start
        if response.status in TRANSIENT_STATUSES:
            raise TransientStatus(
                f"{self.target.label}: HTTP {response.status}: {server_message(response)}",
                status=response.status,
            )
        if response.status != 200:
            raise BatchRejected(server_message(response), status=response.status)
        try:
            predictions, version = self.protocol.predictions(self.target, response, len(inputs))
        except ProtocolError as exc:
            raise BatchRejected(str(exc), status=response.status) from exc
        info = ModelInfo(
            self.target.model,
            version,
            self.protocol.name,
            self.target.url,
            latency_s=elapsed,
            batch_size=len(inputs),
        )
        return predictions, info

    @property
    def ready(self) -> bool:
        """Whether the last readiness probe (or request) found the model serving."""
        return self._ready

    async def aclose(self) -> None:
        """Nothing to release: the transport belongs to the streamlet."""
        self._retired.set()


class PoolMember(Backend, Protocol):
    """A backend that can be one of the servers of a :class:`PooledBackend`."""

    target: Target
    in_flight: int

    @property
    def ready(self) -> bool:
        """Whether the model was found serving at the last probe or request."""
        ...


class PooledBackend:
    """The same model on several servers: each batch goes to the ready server with the
    fewest requests in flight. A server that goes away is skipped (and probed until it is
    back) while the others carry on; with none ready, batches wait for the first back.
    """

    def __init__(self, members: Sequence[PoolMember], retired: asyncio.Event) -> None:
        if not members:
            raise ServingError("a pool of model servers needs at least one URL")
        self.members = list(members)
        self._retired = retired
        self._probes: dict[int, asyncio.Task[bool]] = {}
        self._next = 0
        first = members[0].info
        urls = ",".join(m.target.url for m in members)
        self._info = ModelInfo(first.name, first.version, first.protocol, urls)

    @property
    def info(self) -> ModelInfo:
        """The model; ``url`` lists every server."""
        return self._info

    @property
    def retired(self) -> asyncio.Event:
        """Set once a control record switched to another backend (retires every member)."""
        return self._retired

    def mark_unready(self) -> None:
        """Nothing to mark: :meth:`predict` marks the member whose request failed."""

    async def wait_ready(self, backoff: Backoff, timeout: float) -> bool:
        """Return as soon as one member is ready (probing the others in the background)."""
        while True:
            if any(m.ready for m in self.members):
                return True
            if self._retired.is_set():
                return False
            for index, member in enumerate(self.members):
                if index not in self._probes or self._probes[index].done():
                    self._probes[index] = asyncio.ensure_future(member.wait_ready(backoff, timeout))
            retired = asyncio.ensure_future(self._retired.wait())
            try:
                await asyncio.wait(
                    [*self._probes.values(), retired], return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                retired.cancel()

    def _pick(self) -> PoolMember:
        ready = [m for m in self.members if m.ready] or self.members
        start = self._next = (self._next + 1) % len(ready)
        order = ready[start:] + ready[:start]
        return min(order, key=lambda m: m.in_flight)

    async def predict(self, inputs: Sequence[Any], timeout: float) -> tuple[list[Any], ModelInfo]:
        """Send the batch to the least busy ready member."""
        member = self._pick()
        try:
            return await member.predict(inputs, timeout)
        except TransportError as exc:
            if not exc.timeout:
                member.mark_unready()
            raise

    async def aclose(self) -> None:
        """Retire every member and stop the background probes."""
        self._retired.set()
        for probe in self._probes.values():
            probe.cancel()
