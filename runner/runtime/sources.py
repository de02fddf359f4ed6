"""The source pump both runners use: runs a source's ``generate()`` until it ends or a stop
is requested, and hands what it yields, encoded, to the runner in batches.

* An async ``generate()`` runs on the loop; a stop request does not wait for its next
  record (an HTTP ingress may wait for a request for ever).
* A sync ``generate()`` runs in a worker thread of its own, so that a source that blocks
  between records (``time.sleep``, a blocking HTTP call) neither stalls the other
  streamlets on the loop nor delays a stop: a stop request is answered within
  ``stop_wait`` seconds whatever the source is doing. Records it yields within that time
  are still delivered; the thread closes the generator itself once its current record
  comes back.
* A failing ``generate()`` is a :class:`~runner.runtime.lifecycle.LifecycleError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from runner.runtime.executor import Executor
from runner.runtime.lifecycle import LifecycleError
from runner.runtime.messages import DeadLetter, Emitted

__all__ = ["Publish", "SourcePump"]

#: What the pump hands its runner: encoded outputs and dead letters of a batch of records.
Publish = Callable[[list[Emitted], list[DeadLetter]], Awaitable[None]]

#: Batches a sync source may have encoded ahead of the runner.
_AHEAD = 4

_END = object()


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class SourcePump:
    """Runs ``executor``'s ``generate()`` and ``await publish(outputs, dead_letters)`` for
    each batch of at most ``batch_size`` records.

    ``stop`` ends the pump early (the runner sets it on SIGTERM/Ctrl-C). ``tick``, when
    given, is awaited at least every ``tick_seconds`` while the source waits for input (the
    Kafka runner commits and reports health there).
    """

    def __init__(
        self,
        executor: Executor,
        publish: Publish,
        stop: asyncio.Event,
        *,
        batch_size: int = 256,
        stop_wait: float = 0.5,
        tick: Callable[[], Awaitable[None]] | None = None,
        tick_seconds: float = 0.2,
    ) -> None:
        self.executor = executor
        self.publish = publish
        self.stop = stop
        self.batch_size = batch_size
        self.stop_wait = stop_wait
        self.tick = tick
        self.tick_seconds = tick_seconds

    async def run(self) -> None:
        """Pump until ``generate()`` ends or ``stop`` is set."""
        generate = self.executor.instance.generate
        if inspect.isasyncgenfunction(generate) or inspect.iscoroutinefunction(generate):
            await self._pump_async(self._call_generate())
        else:
            await self._pump_sync()

    def _call_generate(self) -> Any:
        try:
            return self.executor.instance.generate()
        except Exception as exc:
            raise LifecycleError(self.executor.name, "generate", exc) from exc

    # -- async sources -------------------------------------------------------------------

    async def _pump_async(self, produced: Any) -> None:
        if inspect.isawaitable(produced):  # `async def generate()` returning an iterable
            produced = await produced
        if not isinstance(produced, AsyncIterable):
            await self._pump_sync(produced)
            return
        iterator: AsyncIterator[Any] = produced.__aiter__()
        executor = self.executor
        stop = asyncio.ensure_future(self.stop.wait())
        try:
            while not self.stop.is_set():
                step = asyncio.ensure_future(anext(iterator))
                while True:
                    done, _ = await asyncio.wait(
                        {step, stop}, timeout=self.tick_seconds, return_when=asyncio.FIRST_COMPLETED
                    )
                    if done or self.tick is None:
                        if done:
                            break
                        continue
                    await self.tick()
                if not step.done():  # stopped while the source waits
                    step.cancel()
                    await asyncio.gather(step, return_exceptions=True)
                    break
                try:
                    item = step.result()
                except StopAsyncIteration:
                    break
                except Exception as exc:
                    raise LifecycleError(executor.name, "generate", exc) from exc
                out: list[Emitted] = []
                dead: list[DeadLetter] = []
                executor.encode_generated(item, out, dead)
                # An async source may be slow: each record goes on as it comes.
                await self.publish(out, dead)
        finally:
            stop.cancel()
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    # -- sync sources --------------------------------------------------------------------

    async def _pump_sync(self, produced: Iterable[Any] | None = None) -> None:
        worker = _SyncSource(self, produced, asyncio.get_running_loop())
        thread = threading.Thread(
            target=worker.run, name=f"{self.executor.name}.generate", daemon=True
        )
        thread.start()
        stop = asyncio.ensure_future(self.stop.wait())
        deadline: float | None = None
        get: asyncio.Future[Any] | None = None
        try:
            while True:
                if get is None:
                    get = asyncio.ensure_future(worker.handoff.get())
                waiting = {get} if deadline is not None else {get, stop}
                timeout = self.tick_seconds
                if deadline is not None:
                    timeout = min(timeout, deadline - time.monotonic())
                    if timeout <= 0:
                        return  # the source is busy inside its generator: leave it to it
                done, _ = await asyncio.wait(
                    waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if stop in done and deadline is None:
                    worker.stopping.set()
                    deadline = time.monotonic() + self.stop_wait
                if get not in done:
                    if not done and self.tick is not None:
                        await self.tick()
                    continue
                item = get.result()
                get = None
                if item is _END:
                    return
                if isinstance(item, _Failed):
                    raise LifecycleError(self.executor.name, "generate", item.error)
                if isinstance(item, AsyncIterable):  # a sync generate() returned one
                    worker.taken()
                    await self._pump_async(item)
                    return
                try:
                    await self.publish(*item)
                finally:
                    worker.taken()
        finally:
            worker.abandon()
            stop.cancel()
            if get is not None:
                get.cancel()


class _SyncSource:
    """The worker-thread side of a sync source: iterate, encode, hand over.

    A batch goes to the loop as soon as the loop has taken the previous ones (so a slow
    source's records go on one by one, at once), else when it has ``batch_size`` records
    (so a fast source's batches grow while the runner is busy).
    """

    def __init__(
        self, pump: SourcePump, produced: Iterable[Any] | None, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.pump = pump
        self.produced = produced
        self.loop = loop
        self.handoff: asyncio.Queue[Any] = asyncio.Queue()
        self.stopping = threading.Event()
        self._slots = threading.Semaphore(_AHEAD)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._abandoned = False

    # -- the loop's side -----------------------------------------------------------------

    def taken(self) -> None:
        """The loop is done with one handed-over item."""
        with self._lock:
            self._in_flight -= 1
        self._slots.release()

    def abandon(self) -> None:
        """The loop takes nothing more: the thread closes the generator and ends."""
        self._abandoned = True
        self.stopping.set()

    # -- the thread's side ---------------------------------------------------------------

    def _idle(self) -> bool:
        with self._lock:
            return self._in_flight == 0

    def _hand_over(self, item: Any) -> bool:
        """Queue ``item`` for the loop (waiting for a free slot); ``False`` once nobody
        takes items any more."""
        while not self._slots.acquire(timeout=0.1):
            if self._abandoned:
                return False
        if self._abandoned:
            return False
        with self._lock:
            self._in_flight += 1
        try:
            self.loop.call_soon_threadsafe(self.handoff.put_nowait, item)
        except RuntimeError:  # the loop is closed
            return False
        return True

    def run(self) -> None:
        try:
            produced: Iterable[Any] | AsyncIterable[Any] | None = self.produced
            if produced is None:
                produced = self.pump.executor.instance.generate()
            if isinstance(produced, AsyncIterable):
                self._hand_over(produced)
                return
            self._iterate(iter(produced))
        except BaseException as exc:
            self._hand_over(_Failed(exc))
            return
        self._hand_over(_END)

    def _iterate(self, iterator: Any) -> None:
        encode = self.pump.executor.encode_generated
        batch_size = self.pump.batch_size
        stopping = self.stopping
        idle = self._idle
        out: list[Emitted] = []
        dead: list[DeadLetter] = []
        try:
            for item in iterator:
                encode(item, out, dead)
                if len(out) + len(dead) >= batch_size or idle():
                    if not self._hand_over((out, dead)):
                        return
                    out, dead = [], []
                if stopping.is_set():
                    break
            if out or dead:
                self._hand_over((out, dead))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
