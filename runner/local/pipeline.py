"""The in-process runner: a verified blueprint on asyncio, topics as bounded in-memory channels.

Records cross every topic encoded with the topic's codec, exactly as they would on Kafka,
so a schema mistake shows up locally. Each consuming streamlet of a topic gets every
record (one channel per consumer group); the replicas of a streamlet share their group's
channel. Channels are bounded, so a slow consumer slows its producers (backpressure) and
memory stays flat however long the stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blueprint import StreamletSpec, VerifiedBlueprint
from runner.runtime.dead_letter_file import DeadLetterFile
from runner.runtime.errors import StreamletFailed
from runner.runtime.executor import Executor
from runner.runtime.fused import fusable_topics
from runner.runtime.heap import frozen_heap
from runner.runtime.lifecycle import instance_lifecycle
from runner.runtime.messages import DeadLetter, Emitted, Message
from runner.runtime.partitioning import partition_for
from runner.runtime.sources import SourcePump
from runner.runtime.state import MemoryStore, PartitionStore, RocksStore, StateManager
from runner.runtime.stats import StreamletStats
from runner.runtime.tables import in_time_order, spec_states
from runner.runtime.timers import Timers
from runner.runtime.topic_codecs import TopicCodecs

__all__ = ["LocalRunner", "RunResult"]

log = logging.getLogger("streamlets.runner.local")

#: Batches a channel holds before its producers wait.
DEFAULT_QUEUE_BATCHES = 32
#: How often the runner looks whether nothing can produce a record any more.
QUIET_CHECK_SECONDS = 0.2
#: Records a source groups into one batch (at most; a slow source sends sooner).
DEFAULT_SOURCE_BATCH = 256

_END = None  # end-of-stream marker, one per consuming replica


class _Group:
    """One consumer group on a topic: a bounded queue of message batches per member.

    The topic's partitions are shared out among the members as a consumer group's
    assignor would (partition ``p`` to member ``p % members``), so each member reads its
    partitions only, in order: per-key order holds with several replicas, and members
    beyond the number of partitions get nothing, as on Kafka.
    """

    def __init__(self, name: str, maxsize: int, members: int, partitions: int) -> None:
        self.name = name
        self.members = members
        self.queues: list[asyncio.Queue[list[Message] | None]] = [
            asyncio.Queue(maxsize) for _ in range(members)
        ]
        self.owner = [p % members for p in range(partitions)]

    async def put(self, messages: list[Message]) -> None:
        """Hand each message to the member that owns its partition."""
        if self.members == 1:
            await self.queues[0].put(messages)
            return
        shares: dict[int, list[Message]] = {}
        owner = self.owner
        for message in messages:
            shares.setdefault(owner[message.partition], []).append(message)
        for member, share in shares.items():
            await self.queues[member].put(share)


class _Topic:
    """A topic of ``partitions`` partitions: stamps each batch's messages with partition,
    offset and timestamp, fans it out to every consumer group, ends when its producers end.

    A keyed message goes to the partition its key hashes to (Kafka's murmur2, see
    :mod:`runner.runtime.partitioning`); keyless ones are spread over the partitions.
    """

    def __init__(self, key: str, partitions: int = 1) -> None:
        self.key = key
        self.partitions = partitions
        self.groups: list[_Group] = []
        self.open_producers = 0
        self.closed = False
        self.offsets = [0] * partitions
        self._spread = 0
        self.collected: list[Message] | None = None

    async def publish(self, messages: list[Message]) -> None:
        if not messages:
            return
        # Each message is this topic's own (one per topic and record): stamp it in place.
        key, offsets, n = self.key, self.offsets, self.partitions
        now = -1
        if n == 1:
            offset = offsets[0]
            for message in messages:
                message.topic = key
                message.partition = 0
                message.offset = offset
                offset += 1
                if message.timestamp < 0:
                    if now < 0:
                        now = time.time_ns() // 1_000_000
                    message.timestamp = now
            offsets[0] = offset
        else:
            spread = self._spread
            for message in messages:
                if message.key is None:
                    partition = spread % n
                    spread += 1
                else:
                    partition = partition_for(message.key, n)
                message.topic = key
                message.partition = partition
                message.offset = offsets[partition]
                offsets[partition] += 1
                if message.timestamp < 0:
                    if now < 0:
                        now = time.time_ns() // 1_000_000
                    message.timestamp = now
            self._spread = spread
        if self.collected is not None:
            self.collected.extend(messages)
        for group in self.groups:
            await group.put(messages)

    async def producer_done(self) -> None:
        self.open_producers -= 1
        if self.open_producers <= 0:
            await self.close()

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for group in self.groups:
            for queue in group.queues:
                await queue.put(_END)


async def _with_timers(
    executor: Executor,
    work: Awaitable[Any],
    publish: Callable[[list[Emitted], list[DeadLetter]], Awaitable[None]],
) -> None:
    """Await ``work`` (an instance's consuming or its source pump) while its timers, if it
    has any, run between its batches; they stop with it, and a timer that fails the run
    (``on_error: fail``) stops the work."""
    timers = Timers(executor)
    if not timers:
        await work
        return
    working = asyncio.ensure_future(work)

    async def tick() -> None:
        while True:
            await asyncio.sleep(timers.wait())
            emitted, dead = await timers.run_due()
            await publish(emitted, dead)

    ticking = asyncio.ensure_future(tick())
    try:
        await asyncio.wait([working, ticking], return_when=asyncio.FIRST_COMPLETED)
        if ticking.done() and not working.done():
            working.cancel()
            await asyncio.gather(working, return_exceptions=True)
            ticking.result()  # the timer's failure
        await working
    finally:
        for task in (working, ticking):
            task.cancel()
        await asyncio.gather(working, ticking, return_exceptions=True)


@dataclass
class RunResult:
    """What a local run did: per-streamlet counters, dead letters and collected messages."""

    stats: dict[str, StreamletStats]
    dead_letters: list[DeadLetter]
    dead_letter_file: Path | None
    collected: dict[str, list[Message]] = field(default_factory=dict)
    duration: float = 0.0
    stopped: bool = False
    error: BaseException | None = None
    #: streamlet -> state -> key -> value after the run (keys as stored: bytes).
    state: dict[str, dict[str, dict[bytes, Any]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the run ended without a failure."""
        return self.error is None


_Inbox = asyncio.Queue[list[Message] | None]


async def _take_any(queues: Mapping[str, _Inbox]) -> dict[str, list[Message] | None]:
    """Wait for an item of any of ``queues``; the items taken, by queue (one, or a few
    when several came at once). A wait that is cancelled takes nothing from its queue."""
    waiters = {name: asyncio.ensure_future(queue.get()) for name, queue in queues.items()}
    try:
        await asyncio.wait(waiters.values(), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters.values():
            waiter.cancel()
        await asyncio.gather(*waiters.values(), return_exceptions=True)
    return {
        name: waiter.result()
        for name, waiter in waiters.items()
        if not waiter.cancelled() and waiter.exception() is None
    }


class LocalRunner:
    """Runs a :class:`VerifiedBlueprint` in this process.

    ``inject`` puts encoded messages on topics before the run (they count as one more
    producer of the topic); ``collect`` keeps every message written to the named topics.
    ``run_dir`` is where dead letters are written (``dead-letters.jsonl``), created on the
    first one; ``None`` keeps them in memory only.

    Keyed state (DESIGN §8) is partitioned like the streamlet's input topics and kept in
    memory, or with ``state_dir`` in a RocksDB store per streamlet and partition under it
    (``STATE_DIR/<streamlet>/partition-<n>``; a source's under ``replica-<n>``), so that a
    later run continues where this one stopped. ``state`` seeds values before the run:
    streamlet -> state -> key -> value.

    Windows (DESIGN §9) still open when every input of their streamlet has ended close
    and emit then, before the streamlet's outputs end, so a bounded run sees every window;
    a run that is stopped (Ctrl-C) leaves them open (in ``state_dir``, for the next run).
    """

    def __init__(
        self,
        blueprint: VerifiedBlueprint,
        *,
        run_dir: Path | None = None,
        inject: Mapping[str, Sequence[Message]] | None = None,
        collect: Iterable[str] = (),
        queue_batches: int = DEFAULT_QUEUE_BATCHES,
        source_batch: int = DEFAULT_SOURCE_BATCH,
        keep_dead_letters: bool = True,
        state_dir: Path | None = None,
        state: Mapping[str, Mapping[str, Mapping[bytes, Any]]] | None = None,
        codecs: TopicCodecs | None = None,
        fuse: bool = False,
    ) -> None:
        self.blueprint = blueprint
        #: Hand records on as objects where a hop allows it (see runner.runtime.fused).
        self.fuse = fuse
        self.state_dir = state_dir
        self.state_seed = {k: dict(v) for k, v in (state or {}).items()}
        self.final_state: dict[str, dict[str, dict[bytes, Any]]] = {}
        self.run_dir = run_dir
        self.inject = dict(inject or {})
        self.collect = set(collect)
        self.queue_batches = queue_batches
        self.source_batch = source_batch
        self.keep_dead_letters = keep_dead_letters
        #: Topic codecs: ``avro-confluent`` topics share an in-process registry per run
        #: (``codecs`` gives one to share with what is injected and collected: the testkit).
        self.codecs = codecs if codecs is not None else TopicCodecs(None, local=True)
        self.dead_letters: list[DeadLetter] = []
        self._dead_file = DeadLetterFile(run_dir)
        self._stopping: asyncio.Event | None = None  # created in run(), on its loop
        self._executors: list[Executor] = []
        #: Per streamlet, each replica's phase: starting, running, done, failed or stopped.
        self.phases: dict[str, list[str]] = {
            name: ["starting"] * spec.replicas for name, spec in blueprint.streamlets.items()
        }
        #: Per streamlet, what ended a replica that failed (a lifecycle hook's error, a
        #: record that failed under ``on_error: fail``).
        self.failures: dict[str, BaseException] = {}
        self._topics: dict[str, _Topic] = {}
        self._feeding = 0  # sources and injections still running
        self._handling = 0  # batches being processed and published
        self.started = 0.0

    # -- control -------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop gracefully: sources stop, everything in flight drains, teardown runs."""
        if self._stopping is not None:
            self._stopping.set()

    @property
    def stopping(self) -> bool:
        """Whether a graceful stop was requested."""
        return self._stopping is not None and self._stopping.is_set()

    def snapshot(self) -> dict[str, StreamletStats]:
        """Current counters per streamlet (summed over replicas)."""
        totals = {name: StreamletStats() for name in self.blueprint.streamlets}
        for executor in self._executors:
            totals[executor.name].add(executor.stats)
        return totals

    @property
    def executors(self) -> Sequence[Executor]:
        """The executors of the run (one per replica), once it has started."""
        return self._executors

    def topic_records(self) -> dict[str, int]:
        """Records written to each topic so far (by topic key; empty before the run)."""
        return {key: sum(topic.offsets) for key, topic in self._topics.items()}

    @property
    def recent_dead_letters(self) -> Mapping[str, Sequence[DeadLetter]]:
        """The latest dead letters of each streamlet that had some, newest last."""
        return self._dead_file.recent

    # -- dead letters --------------------------------------------------------------------

    @property
    def dead_letter_count(self) -> int:
        """Dead letters so far."""
        return self._dead_file.count

    @property
    def dead_letter_path(self) -> Path | None:
        """The run directory's ``dead-letters.jsonl``, once it has one."""
        return self._dead_file.path

    @property
    def first_dead_letters(self) -> Mapping[str, DeadLetter]:
        """The first dead letter of each streamlet that had one."""
        return self._dead_file.first

    def _write_dead(self, dead: list[DeadLetter]) -> None:
        if not dead:
            return
        if self.keep_dead_letters:
            self.dead_letters.extend(dead)
        self._dead_file.write(dead)

    # -- wiring --------------------------------------------------------------------------

    def _build(self) -> tuple[dict[str, _Topic], list[Callable[[], Any]]]:
        bp = self.blueprint
        topics = {key: _Topic(key, t.partitions or 1) for key, t in bp.topics.items()}
        for key in self.collect:
            if key not in topics:
                raise KeyError(f"cannot collect topic '{key}': the blueprint has no such topic")
            topics[key].collected = []
        for key in self.inject:
            if key not in topics:
                raise KeyError(f"cannot inject into topic '{key}': the blueprint has no such topic")
        if self.fuse:
            skip = set(self.inject) | self.collect
            self.codecs.fused = fusable_topics(bp, self.codecs.codec_name, skip)
            log.info(
                "fused hops (records cross as objects): %s",
                ", ".join(sorted(self.codecs.fused)) or "none",
            )
        # (streamlet, inlet, replica) -> the queue that replica reads the inlet's topic from
        inboxes: dict[tuple[str, str, int], asyncio.Queue[list[Message] | None]] = {}
        for key, spec in bp.topics.items():
            topic = topics[key]
            for ref in spec.consumers:
                consumer = bp.streamlets[ref.streamlet]
                if ref.port in consumer.cls.replay_inlets:
                    # Every replica reads all of a replay inlet's topic (control, state).
                    for replica in range(consumer.replicas):
                        name = f"{bp.name}.{ref.streamlet}.{replica}"
                        group = _Group(name, self.queue_batches, 1, topic.partitions)
                        topic.groups.append(group)
                        inboxes[(ref.streamlet, ref.port, replica)] = group.queues[0]
                    continue
                group = _Group(
                    f"{bp.name}.{ref.streamlet}",
                    self.queue_batches,
                    consumer.replicas,
                    topic.partitions,
                )
                topic.groups.append(group)
                for replica in range(consumer.replicas):
                    inboxes[(ref.streamlet, ref.port, replica)] = group.queues[replica]
            topic.open_producers = sum(bp.streamlets[r.streamlet].replicas for r in spec.producers)
            if key in self.inject:
                topic.open_producers += 1
        jobs: list[Callable[[], Any]] = []
        for name, streamlet in bp.streamlets.items():
            for replica in range(streamlet.replicas):
                executor = Executor(
                    streamlet,
                    bp,
                    state=self._state_manager(streamlet, replica),
                    codecs=self.codecs,
                )
                self._executors.append(executor)
                outlet_topics = sorted(
                    {t.key for o in streamlet.cls.outlets() for t in bp.outlet_topics(name, o)}
                )
                inlets = {
                    inlet: inboxes[(name, inlet, replica)]
                    for inlet in streamlet.cls.inlets()
                    if (name, inlet, replica) in inboxes
                }
                owned = [
                    p for p in range(bp.input_partitions(name)) if p % streamlet.replicas == replica
                ]
                jobs.append(
                    self._job(
                        executor, replica, inlets, [topics[k] for k in outlet_topics], topics, owned
                    )
                )
        for key, messages in self.inject.items():
            jobs.append(self._inject_job(topics[key], list(messages)))
        return topics, jobs

    def _state_manager(self, spec: StreamletSpec, replica: int) -> StateManager | None:
        """The state of one replica of ``spec`` (``None`` when it declares none), seeded
        with the keys of the partitions it owns."""
        states = spec_states(spec)
        if not states:
            return None
        is_source = not spec.cls.inlets()
        root = self.state_dir

        def opener(partition: int) -> PartitionStore:
            if root is None:
                return MemoryStore()
            leaf = f"replica-{replica}" if is_source else f"partition-{partition}"
            return RocksStore(root / spec.name / leaf)

        manager = StateManager(spec.name, states, opener, source=is_source)
        partitions = self.blueprint.input_partitions(spec.name)
        for state, values in self.state_seed.get(spec.name, {}).items():
            mine = {
                key: value
                for key, value in values.items()
                if is_source or partition_for(key, partitions) % spec.replicas == replica
            }
            manager.seed(
                state, mine, lambda key: 0 if is_source else partition_for(key, partitions)
            )
        return manager

    def _keep_state(self, executor: Executor) -> None:
        """Checkpoint and close ``executor``'s state; its values go to the run's result."""
        manager = executor.state
        if manager is None:
            return
        manager.checkpoint()
        kept = self.final_state.setdefault(executor.name, {})
        for name, state in manager.states.items():
            if getattr(state, "internal", False):
                continue  # a window's entries: the windows it emitted are its result
            kept.setdefault(name, {}).update(manager.values(name))
        manager.close()

    def _inject_job(self, topic: _Topic, messages: list[Message]) -> Callable[[], Any]:
        async def inject() -> None:
            self._feeding += 1
            try:
                for start in range(0, len(messages), self.source_batch):
                    await topic.publish(messages[start : start + self.source_batch])
            finally:
                self._feeding -= 1
                await topic.producer_done()

        return inject

    def _job(
        self,
        executor: Executor,
        replica: int,
        inlets: Mapping[str, asyncio.Queue[list[Message] | None]],
        outputs: list[_Topic],
        topics: Mapping[str, _Topic],
        partitions: Sequence[int] = (),
    ) -> Callable[[], Any]:
        async def publish(emitted: list[Emitted]) -> None:
            if not emitted:
                return
            if len(outputs) == 1:
                await outputs[0].publish([e.message for e in emitted])
                return
            by_topic: dict[str, list[Message]] = {}
            for item in emitted:
                by_topic.setdefault(item.topic, []).append(item.message)
            for key, messages in by_topic.items():
                await topics[key].publish(messages)

        async def consume(inlet: str, queue: asyncio.Queue[list[Message] | None]) -> None:
            while True:
                batch = await queue.get()
                if batch is _END:
                    return
                # Take whatever else is ready: bigger batches, fewer hops (one list: a
                # batch may be another group's too, and concatenating copies each time).
                if not queue.empty():
                    batch = list(batch)
                    while not queue.empty():
                        more = queue.get_nowait()
                        if more is _END:
                            queue.put_nowait(_END)  # leave it for the loop to see next
                            break
                        batch.extend(more)
                self._handling += 1
                try:
                    emitted, dead = await executor.process_batch(inlet, batch)
                    self._write_dead(dead)
                    await publish(emitted)
                finally:
                    self._handling -= 1
                # A sync streamlet never waits: let the others (its fellow replicas, the
                # streamlets downstream) have the loop between batches.
                await asyncio.sleep(0)

        async def consume_in_time_order(queues: Mapping[str, _Inbox]) -> None:
            """All inlets of a streamlet with tables from one loop: what is ready of each, in
            timestamp order (see runner.runtime.tables)."""
            tables = frozenset(executor.spec.cls.tables())
            open_queues = dict(queues)
            while open_queues:
                taken: dict[str, list[Message] | None] = {}
                if all(queue.empty() for queue in open_queues.values()):
                    taken = await _take_any(open_queues)
                ready: dict[str, list[Message]] = {}
                for inlet, queue in list(open_queues.items()):
                    items = [taken[inlet]] if inlet in taken else []
                    while not queue.empty():
                        items.append(queue.get_nowait())
                    for batch in items:
                        if batch is _END:  # the last item of its queue
                            del open_queues[inlet]
                            break
                        ready.setdefault(inlet, []).extend(batch)
                if not ready:
                    continue
                self._handling += 1
                try:
                    for inlet, messages in in_time_order(ready, tables):
                        emitted, dead = await executor.process_batch(inlet, messages)
                        self._write_dead(dead)
                        await publish(emitted)
                finally:
                    self._handling -= 1
                await asyncio.sleep(0)

        async def publish_generated(emitted: list[Emitted], dead: list[DeadLetter]) -> None:
            self._write_dead(dead)
            await publish(emitted)
            if executor.state is not None:
                executor.state.checkpoint()  # a source's position, once its records are out

        is_source = not executor.spec.cls.inlets()

        phases = self.phases[executor.name]

        async def job() -> None:
            if is_source:
                self._feeding += 1  # from the start: its setup() may take a while
            try:
                async with instance_lifecycle(executor):
                    phases[replica] = "running"
                    if inlets:
                        consuming: Awaitable[Any] = (
                            consume_in_time_order(inlets)
                            if executor.spec.cls.tables()
                            else asyncio.gather(*(consume(i, g) for i, g in inlets.items()))
                        )
                        await _with_timers(executor, consuming, publish_generated)
                        if executor.windows is not None and not self.stopping:
                            # Every input has ended: the open windows close and emit.
                            emitted, dead = executor.close_windows(partitions)
                            self._write_dead(dead)
                            await publish(emitted)
                    elif is_source:
                        assert self._stopping is not None
                        pump = SourcePump(
                            executor,
                            publish_generated,
                            self._stopping,
                            batch_size=self.source_batch,
                        )
                        await _with_timers(executor, pump.run(), publish_generated)
                phases[replica] = "done"
            except asyncio.CancelledError:
                phases[replica] = "stopped"
                raise
            except BaseException as exc:
                phases[replica] = "failed"
                self.failures.setdefault(executor.name, exc)
                raise
            finally:
                self._keep_state(executor)
                if is_source:
                    self._feeding -= 1
                for topic in outputs:
                    await topic.producer_done()

        job.__name__ = f"{executor.name}-{replica}"
        return job

    # -- running -------------------------------------------------------------------------

    async def _end_when_quiet(
        self, topics: Mapping[str, _Topic], jobs_over: asyncio.Future[Any]
    ) -> None:
        """End every topic once nothing can produce a record any more: no source or
        injection runs, no consumer handles a batch, every channel is empty.

        Topics end by themselves when their producers end; this ends the ones whose
        producers wait for each other (a cycle that no source feeds), which would else
        keep the run waiting for ever. It returns as soon as the jobs are over (the run
        does not wait for its next look).
        """
        quiet = 0
        while not all(t.closed for t in topics.values()):
            await asyncio.wait({jobs_over}, timeout=QUIET_CHECK_SECONDS)
            if jobs_over.done():
                return
            idle = (
                self._feeding == 0
                and self._handling == 0
                and all(q.empty() for t in topics.values() for g in t.groups for q in g.queues)
            )
            quiet = quiet + 1 if idle else 0
            if quiet >= 2:
                for topic in topics.values():
                    await topic.close()
                return

    async def run(self) -> RunResult:
        """Run until every bounded source has ended and everything has drained (or a stop)."""
        self._stopping = asyncio.Event()
        self.started = time.monotonic()
        topics, jobs = self._build()
        self._topics = topics
        # Topics nobody produces to (outside input, run locally) are empty: end them now.
        closers = [t.close() for t in topics.values() if t.open_producers == 0]
        tasks = [asyncio.create_task(job(), name=getattr(job, "__name__", "job")) for job in jobs]
        tasks += [asyncio.create_task(closer) for closer in closers]
        jobs_over = asyncio.gather(*tasks, return_exceptions=True)
        tasks.append(asyncio.create_task(self._end_when_quiet(topics, jobs_over), name="quiet"))
        error: BaseException | None = None
        try:
            with frozen_heap():  # the stream allocates; what start-up made stays put
                done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    error = task.exception()
                    break
            if error is not None:
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            self._dead_file.close()
        if error is not None and not isinstance(error, StreamletFailed):
            log.debug("local run failed", exc_info=error)
        return RunResult(
            stats=self.snapshot(),
            dead_letters=self.dead_letters,
            dead_letter_file=self.dead_letter_path,
            collected={k: t.collected for k, t in topics.items() if t.collected is not None},
            duration=time.monotonic() - self.started,
            stopped=self.stopping,
            error=error,
            state=self.final_state,
        )
