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
* A source that overrides :meth:`~streamlets.streamlet.Streamlet.on_stop` is told of a
  stop instead, and the pump goes on taking its records until ``generate()`` ends (at most
  ``drain_seconds``): what an HTTP ingress accepted before the stop still gets delivered.
* A failing ``generate()`` is a :class:`~runner.runtime.lifecycle.LifecycleError`.
* A source's own state (its position) travels with its records: the changes made up to a
  record are applied when the batch holding that record is handed to the runner, not
  earlier (a sync source runs ahead of the runner), so a position is never kept before the
  records it is the position after.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from runner.runtime.executor import Executor
from runner.runtime.lifecycle import LifecycleError, in_thread
from runner.runtime.messages import DeadLetter, Emitted
from streamlets.streamlet import Streamlet

__all__ = ["Publish", "SourcePump"]

#: What the pump hands its runner: encoded outputs and dead letters of a batch of records.
Publish = Callable[[list[Emitted], list[DeadLetter]], Awaitable[None]]

#: Batches a sync source may have encoded ahead of the runner.
_AHEAD = 4
#: How long the first record of a sync source's batch waits for more.
_LINGER_SECONDS = 0.002

_END = object()


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class SourcePump:
    """Runs ``executor``'s ``generate()`` and ``await publish(outputs, dead_letters)`` for
    each batch of at most ``batch_size`` records.

    ``stop`` ends the pump early (the runner sets it on SIGTERM/Ctrl-C): at once, within
    ``stop_wait`` for a sync source busy in its generator, or, for a source that overrides
    ``on_stop()``, once it has yielded what it accepted (within ``drain_seconds``). ``tick``, when
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
        drain_seconds: float = 10.0,
        tick: Callable[[], Awaitable[None]] | None = None,
        tick_seconds: float = 0.2,
    ) -> None:
        self.executor = executor
        self.publish = publish
        self.stop = stop
        self.batch_size = batch_size
        self.stop_wait = stop_wait
        self.drain_seconds = drain_seconds
        # Overridden on_stop(): the source drains itself when told to stop.
        self.drains = type(executor.instance).on_stop is not Streamlet.on_stop
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
        state = executor.state
        stop = asyncio.ensure_future(self.stop.wait())
        deadline: float | None = None  # set once a draining source was told to stop
        try:
            while not (stop.done() and not self.drains):
                step = asyncio.ensure_future(anext(iterator))
                while True:
                    waiting = {step} if stop.done() else {step, stop}
                    timeout = self.tick_seconds
                    if deadline is not None:
                        timeout = min(timeout, max(deadline - time.monotonic(), 0.0))
                    done, _ = await asyncio.wait(
                        waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                    )
                    if step in done:
                        break
                    if stop in done and deadline is None and self.drains:
                        await self._tell_stop()
                        deadline = time.monotonic() + self.drain_seconds
                        continue
                    if stop.done() and (deadline is None or time.monotonic() >= deadline):
                        break  # stopped while the source waits (or drains too long)
                    if not done and self.tick is not None:
                        await self.tick()
                if not step.done():
                    step.cancel()
                    await asyncio.gather(step, return_exceptions=True)
                    break
                try:
                    item = step.result()
                except StopAsyncIteration:
                    if state is not None:  # the changes after its last record
                        state.apply_own(state.own_snapshot())
                    break
                except Exception as exc:
                    raise LifecycleError(executor.name, "generate", exc) from exc
                out: list[Emitted] = []
                dead: list[DeadLetter] = []
                executor.encode_generated(item, out, dead)
                if state is not None:
                    state.apply_own(state.own_snapshot())
                # An async source may be slow: each record goes on as it comes.
                await self.publish(out, dead)
        finally:
            stop.cancel()
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    async def _tell_stop(self) -> None:
        """Call the source's ``on_stop()`` (a sync one in a worker thread)."""
        on_stop = self.executor.instance.on_stop
        try:
            if inspect.iscoroutinefunction(on_stop):
                await on_stop()
            else:
                result = await in_thread(on_stop, name=f"{self.executor.name}.on_stop")
                if inspect.isawaitable(result):
                    await result
        except Exception as exc:
            raise LifecycleError(self.executor.name, "on_stop", exc) from exc

    # -- sync sources --------------------------------------------------------------------

    async def _pump_sync(self, produced: Iterable[Any] | None = None) -> None:
        worker = _SyncSource(self, produced, asyncio.get_running_loop())
        thread = threading.Thread(
            target=worker.run, name=f"{self.executor.name}.generate", daemon=True
        )
        thread.start()
        stop = asyncio.ensure_future(self.stop.wait())
        deadline: float | None = None
        state = self.executor.state
        try:
            while True:
                woken = asyncio.ensure_future(worker.woken.wait())
                waiting = {woken} if deadline is not None else {woken, stop}
                timeout = self.tick_seconds
                if deadline is not None:
                    timeout = min(timeout, deadline - time.monotonic())
                done: set[asyncio.Future[Any]] = set()
                if timeout > 0:
                    done, _ = await asyncio.wait(
                        waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                    )
                woken.cancel()
                if stop in done and deadline is None:
                    if self.drains:
                        await self._tell_stop()
                        deadline = time.monotonic() + self.drain_seconds
                    else:
                        worker.stopping.set()
                        deadline = time.monotonic() + self.stop_wait
                if worker.woken.is_set():
                    if not worker.full() and worker.end is None:
                        # The first record of a batch: let the source add to it a moment.
                        await asyncio.sleep(_LINGER_SECONDS)
                    out, dead, end, own = worker.take()
                    if own is not None and state is not None:
                        state.apply_own(own)
                    if out or dead:
                        await self.publish(out, dead)
                    if end is not None:
                        await self._finish(end)
                        return
                elif deadline is not None and time.monotonic() >= deadline:
                    return  # the source is busy inside its generator: leave it to it
                elif not done and self.tick is not None:
                    await self.tick()
        finally:
            worker.abandon()
            stop.cancel()

    async def _finish(self, end: Any) -> None:
        if isinstance(end, _Failed):
            raise LifecycleError(self.executor.name, "generate", end.error)
        if isinstance(end, AsyncIterable):  # a sync generate() returned an async iterable
            await self._pump_async(end)


class _Position:
    """A sync source's state changes as of the record before it in the hand-over queue."""

    __slots__ = ("own",)

    def __init__(self, own: Any) -> None:
        self.own = own


class _SyncSource:
    """The worker-thread side of a sync source: iterate and encode into a shared queue.

    The thread appends each record's outputs (and, for a source with state, its position
    after them) to a deque, which takes no lock: a lock per record made the thread and the
    loop contend for it and for the GIL at every record (measured: a third more CPU per
    record than a source run on the loop). It wakes the loop when the queue was empty (or
    a batch fills up); the loop takes everything queued. So a slow source's records go on
    one by one as they come, a fast source's in batches, with one wake-up per batch. The
    thread waits while ``_AHEAD`` batches are queued (backpressure).
    """

    def __init__(
        self, pump: SourcePump, produced: Iterable[Any] | None, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.pump = pump
        self.produced = produced
        self.loop = loop
        self.woken = asyncio.Event()
        self.stopping = threading.Event()
        self.end: Any = None  # _END, _Failed or an async iterable, once the thread is done
        # Emitted, DeadLetter and _Position items, in the order the thread made them.
        self._queue: deque[Any] = deque()
        self._room = threading.Condition()
        self._abandoned = False
        self._batch = pump.batch_size
        self._limit = pump.batch_size * _AHEAD

    # -- the loop's side -----------------------------------------------------------------

    def full(self) -> bool:
        """Whether a whole batch is waiting."""
        return len(self._queue) >= self._batch

    def take(self) -> tuple[list[Emitted], list[DeadLetter], Any, Any]:
        """Everything the thread encoded so far, how it ended (``None``: not yet), and the
        source's state changes as of the last of those records (``None``: none)."""
        self.woken.clear()
        end = self.end  # read first: once set, everything the thread made is queued
        out: list[Emitted] = []
        dead: list[DeadLetter] = []
        own: Any = None
        queue, pop = self._queue, self._queue.popleft
        while queue:
            item = pop()
            if type(item) is Emitted:
                out.append(item)
            elif type(item) is _Position:
                own = item.own
            else:
                dead.append(item)
        with self._room:
            self._room.notify_all()
        return out, dead, end, own

    def abandon(self) -> None:
        """The loop takes nothing more: the thread closes the generator and ends."""
        with self._room:
            self._abandoned = True
            self.stopping.set()
            self._room.notify_all()

    # -- the thread's side ---------------------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody listens
            self.loop.call_soon_threadsafe(self.woken.set)

    def run(self) -> None:
        end: Any = _END
        try:
            produced: Iterable[Any] | AsyncIterable[Any] | None = self.produced
            if produced is None:
                produced = self.pump.executor.instance.generate()
            if isinstance(produced, AsyncIterable):
                end = produced
            else:
                self._iterate(iter(produced))
        except BaseException as exc:
            end = _Failed(exc)
        self.end = end  # after the last record was queued (the loop reads it first)
        self._wake()

    def _iterate(self, iterator: Any) -> None:
        encode = self.pump.executor.encode_generated
        queue, batch, limit = self._queue, self._batch, self._limit
        stopping = self.stopping
        state = self.pump.executor.state
        snapshot = state.own_snapshot if state is not None and state.own is not None else None
        out: list[Emitted] = []
        dead: list[DeadLetter] = []
        try:
            for item in iterator:
                if len(queue) >= limit:
                    with self._room:
                        while len(queue) >= limit and not self._abandoned:
                            self._room.wait(0.1)
                if self._abandoned:
                    return
                encode(item, out, dead)
                had = len(queue)
                if out:
                    queue.extend(out)
                    out.clear()
                if dead:
                    queue.extend(dead)
                    dead.clear()
                if snapshot is not None:
                    queue.append(_Position(snapshot()))
                if had == 0 or had < batch <= len(queue):
                    self._wake()
                if stopping.is_set():
                    break
            else:
                if snapshot is not None:  # the changes after its last record
                    queue.append(_Position(snapshot()))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
