"""One streamlet instance on Kafka: consume -> execution core -> produce -> commit.

The transport around :class:`runner.runtime.executor.Executor` (the same core, lifecycle
and source pump the in-process runner uses). Producing is :mod:`runner.kafka.producing`'s
job and committing :mod:`runner.kafka.commits`'; this module holds the loops. Partitions
revoked in a rebalance have their finished work committed first; lost ones are dropped
(another member re-reads them). A stateful streamlet's partitions wait, paused, while
their state stores catch up from the changelog topics (:mod:`runner.kafka.changelogs`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from typing import Any

from confluent_kafka import Consumer, KafkaException

from blueprint import VerifiedBlueprint
from runner.kafka.admin import BrokerUnreachable, StartupStopped, ensure_topics, plan_topics
from runner.kafka.changelogs import KafkaState, open_store, process_state_dir, source_key
from runner.kafka.commits import Checkpoint
from runner.kafka.consumed import skip_consumer_error
from runner.kafka.end_of_input import EndOfInput
from runner.kafka.logs import client_log
from runner.kafka.metrics import Health, MetricsServer, StreamletMetrics
from runner.kafka.naming import (
    client_id,
    dead_letter_topic,
    group_id,
    kafka_topic,
    transactional_id,
)
from runner.kafka.options import ProcessOptions
from runner.kafka.producing import DeliveryError, OutputProducer, ProducerFenced
from runner.kafka.replay import ReplayReader
from runner.kafka.settings import KafkaSettings, redact
from runner.kafka.sizes import record_limit
from runner.kafka.status import ProcessStatus, write_status
from runner.runtime.dead_letter_summary import error_entry
from runner.runtime.errors import StreamletFailed
from runner.runtime.executor import Executor
from runner.runtime.heap import frozen_heap
from runner.runtime.lifecycle import LifecycleError, instance_lifecycle
from runner.runtime.messages import DeadLetter, Emitted, Message
from runner.runtime.sources import SourcePump
from runner.runtime.state import PartitionStore, StateManager
from runner.runtime.tables import in_time_order, spec_states
from runner.runtime.timers import Timers
from runner.runtime.topic_codecs import TopicCodecs
from streamlets.errors import StreamletsError

__all__ = [
    "EXIT_CRASH",
    "EXIT_FAILED",
    "DeliveryError",
    "ProducerFenced",
    "StreamletProcess",
]

log = logging.getLogger("streamlets.runner.kafka")

#: Exit status when the streamlet failed on purpose (``on_error: fail``, bad config, a
#: failing ``teardown()``): a restart would fail the same way.
EXIT_FAILED = 1
#: Exit status after an unexpected error (lost broker, failed delivery, a failing
#: ``setup()`` or ``generate()``, which may depend on something outside): worth a restart.
EXIT_CRASH = 70


class StreamletProcess:
    """Runs streamlet ``name`` of ``blueprint`` against Kafka until stopped (or its source ends)."""

    def __init__(
        self,
        blueprint: VerifiedBlueprint,
        name: str,
        settings: KafkaSettings,
        options: ProcessOptions | None = None,
    ) -> None:
        if name not in blueprint.streamlets:
            known = ", ".join(sorted(blueprint.streamlets))
            raise StreamletsError(
                f"blueprint '{blueprint.name}' has no streamlet '{name}' (it has: {known})"
            )
        self.blueprint = blueprint
        self.name = name
        self.spec = blueprint.streamlets[name]
        self.settings = settings
        self.options = options or ProcessOptions()
        self.exactly_once = self.spec.processing == "exactly-once"
        self.app = blueprint.name
        self.replica = self.options.replica
        self.label = f"{name}-{self.replica}"
        self.dead_letter_topic = dead_letter_topic(
            blueprint, name, self.options.dead_letter_template
        )
        # blueprint topic key <-> Kafka topic name, and Kafka topic -> inlet.
        self.topic_names = {key: kafka_topic(t) for key, t in blueprint.topics.items()}
        self.inlet_of: dict[str, str] = {}
        self.key_of: dict[str, str] = {}
        for inlet in self.spec.cls.inlets():
            topic = blueprint.inlet_topic(name, inlet)
            if topic is not None:
                self.inlet_of[kafka_topic(topic)] = inlet
                self.key_of[kafka_topic(topic)] = topic.key
        # Replay inlets (control, state) are read in full by every replica, outside the group.
        replay = set(self.spec.cls.replay_inlets)
        self.replay_of = {t: i for t, i in self.inlet_of.items() if i in replay}
        # A streamlet with tables sees its inlets' records in timestamp order (DESIGN §9).
        self.tables = frozenset(self.spec.cls.tables())
        self._replay: ReplayReader | None = None
        self.stateful = bool(self.spec.cls.states())
        self._eager = False
        self._state: KafkaState | None = None
        #: Assigned partitions whose records wait for their state stores, by number.
        self._paused: dict[int, list[Any]] = {}
        self.health = Health()
        self.status = ProcessStatus(name, self.replica, pid=os.getpid())
        self.metrics = StreamletMetrics(self.app, name, self.replica, lambda: self.status.stats)
        self._stop = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._executor: Executor | None = None
        self._consumer: Any = None
        self._producer: OutputProducer | None = None
        self._checkpoint: Checkpoint | None = None
        self._server: MetricsServer | None = None
        self._last_status = 0.0
        self._errors_noted = 0
        self._last_commit = 0.0
        self._timers: Timers | None = None
        self._end_of_input = EndOfInput(self.options.end_of_input)
        self._assigned: set[tuple[str, int]] = set()

    # -- control -------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask for a graceful stop (safe to call from a signal handler)."""
        self._stop = True
        self.health.stopping = True
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None and not loop.is_closed():
            # Wakes a source waiting for its next record at once.
            loop.call_soon_threadsafe(event.set)

    @property
    def stopping(self) -> bool:
        """Whether a stop was requested."""
        return self._stop

    # -- clients -------------------------------------------------------------------------

    def _on_stats(self, raw: str) -> None:
        try:
            data = json.loads(raw)
        except ValueError:
            return
        lag: dict[str, int] = {}
        for topic, body in data.get("topics", {}).items():
            key = self.key_of.get(topic)
            if key is None:
                continue
            total = 0
            for pid, part in body.get("partitions", {}).items():
                if pid == "-1" or not part.get("assigned", True):
                    continue
                value = int(part.get("consumer_lag", -1))
                if value >= 0:
                    self.metrics.set_lag(topic, int(pid), value)
                    total += value
            lag[key] = total
        self.status.lag = lag

    def _producer_config(self) -> dict[str, Any]:
        return self.settings.for_producer(
            **{
                "client.id": client_id(self.blueprint, self.name, self.replica),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                # The Java client's partitioner: a key goes where any Kafka producer puts it.
                "partitioner": "murmur2_random",
                # A stateful streamlet keeps the changelog offsets its stores caught up to,
                # which only the reports of successful deliveries say.
                "delivery.report.only.error": not self.stateful,
                "logger": client_log,
            }
        )

    def _make_producer(self) -> OutputProducer:
        config = self._producer_config()
        tx_id = (
            transactional_id(self.blueprint, self.name, self.replica) if self.exactly_once else None
        )
        return OutputProducer(
            config,
            topic_names=self.topic_names,
            dead_letter_topic=self.dead_letter_topic,
            app=self.app,
            replica=self.replica,
            transactional_id=tx_id,
        )

    def _make_consumer(self) -> Any:
        defaults: dict[str, Any] = {
            "client.id": client_id(self.blueprint, self.name, self.replica),
            "group.id": group_id(self.blueprint, self.name),
            "group.protocol": "classic",
            "partition.assignment.strategy": self._assignment_strategy(),
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 1000,
            "logger": client_log,
        }
        if self.options.metrics_port is not None:
            defaults["statistics.interval.ms"] = 5000
            defaults["stats_cb"] = self._on_stats
        config = self.settings.for_consumer(**defaults)
        log.debug("consumer config: %s", redact(config))
        # An eager protocol (range, roundrobin) assigns the whole set in the callback.
        self._eager = "cooperative" not in str(config["partition.assignment.strategy"])
        return Consumer(config)

    def _assignment_strategy(self) -> str:
        """``range`` for a stateful streamlet that shares several topics out among its
        replicas: it gives partition ``p`` of each of them to the same replica, which holds
        the state of ``p`` (a co-partitioned table's and the others'); cooperative-sticky
        does not promise that. Else cooperative-sticky (rebalances move fewer partitions)."""
        shared = [i for i in self.inlet_of.values() if i not in self.replay_of.values()]
        if self.spec.cls.states() and len(shared) > 1:
            return "range"
        return "cooperative-sticky"

    # -- rebalances ----------------------------------------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self.health.ready = True
        self._assigned.update((p.topic, p.partition) for p in partitions)
        if partitions:
            log.info(
                "%s: assigned %s",
                self.label,
                ", ".join(f"{p.topic}[{p.partition}]" for p in partitions),
            )
        state = self._state
        if state is not None and partitions:
            # Their records wait until the partitions' stores have caught up (_restore).
            if self._eager:
                consumer.assign(partitions)  # the range assignor's protocol: the whole set
            else:
                consumer.incremental_assign(partitions)
            consumer.pause(partitions)
            for p in partitions:
                self._paused.setdefault(p.partition, []).append(p)
            state.assign(p.partition for p in partitions)
            self.health.restoring = state.restoring

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        if not partitions:
            return
        log.info(
            "%s: revoked %s; committing finished work",
            self.label,
            ", ".join(f"{p.topic}[{p.partition}]" for p in partitions),
        )
        try:
            self._commit()
        except (KafkaException, StreamletsError) as exc:  # a new owner reads them again
            log.warning("%s: commit before revocation failed: %s", self.label, exc)
        self._forget(partitions)
        if self._state is not None:
            self._state.revoke(self._released(partitions))

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        log.warning(
            "%s: lost %d partition(s); their uncommitted records will be read again",
            self.label,
            len(partitions),
        )
        self._forget(partitions)
        if self._state is not None:
            self._state.lose(self._released(partitions))

    def _released(self, partitions: list[Any]) -> list[int]:
        """The partition numbers of ``partitions`` none of whose inlet topics' partitions
        stay assigned: their state stores close."""
        gone = {(p.topic, p.partition) for p in partitions}
        kept = {
            tp.partition
            for tp in self._consumer.assignment()
            if (tp.topic, tp.partition) not in gone
        }
        released = sorted({p for _, p in gone} - kept)
        for partition in released:
            self._paused.pop(partition, None)
        return released

    def _forget(self, partitions: list[Any]) -> None:
        assert self._checkpoint is not None
        self._assigned.difference_update((p.topic, p.partition) for p in partitions)
        for p in partitions:
            self._checkpoint.forget(p.topic, p.partition)
            self.metrics.forget_lag(p.topic, p.partition)

    # -- committing and reporting --------------------------------------------------------

    def _send(self, emitted: list[Emitted], dead: list[DeadLetter]) -> None:
        assert self._producer is not None
        self._producer.send(emitted, dead)

    def _check_restarts(self, instance: Any) -> None:
        """Tell a supervised instance whether it resumes; refuse, unsupervised, one that
        would lose data if the platform restarted it."""
        attempt = self.options.attempt
        if attempt is not None:
            instance.resuming = attempt > 1
            return
        problem = instance.restart_problem()
        if problem is not None:
            raise StreamletsError(
                f"streamlet '{self.name}' cannot run where its process may be restarted: {problem}"
            )

    def _flush_instance(self) -> None:
        """The streamlet's ``flush()``: what it wrote is made durable before a commit."""
        assert self._executor is not None
        try:
            self._executor.instance.flush()
        except Exception as exc:
            raise LifecycleError(self.name, "flush", exc) from exc

    def _commit(self, *, timeout: float | None = None) -> None:
        assert self._checkpoint is not None
        if self._checkpoint.commit(timeout=timeout):
            self._write_status(force=True)
        self._last_commit = time.monotonic()

    def _housekeeping(self, *, idle: bool = False) -> None:
        """Between batches: delivery reports, a commit when one is due (or when idle), the
        status file and the liveness beat."""
        assert self._producer is not None
        self.health.beat()
        self._producer.poll()  # raises DeliveryError once an output failed
        if idle or time.monotonic() - self._last_commit >= self.options.commit_interval:
            self._commit()
        self._write_status()

    def _note_live_numbers(self) -> None:
        """Put the latest failed records, the state's size and the open windows in the
        status (for ``flow run-local --kafka --ui``), and the sizes in the metrics."""
        executor = self._executor
        if executor is None:
            return
        if executor.stats.errors != self._errors_noted:
            self._errors_noted = executor.stats.errors
            self.status.recent_errors = [
                error_entry(dead, self.blueprint) for dead in executor.recent_errors
            ]
        with contextlib.suppress(Exception):  # a store that is closing: the next time
            if executor.state is not None:
                self.status.state_entries = executor.state.entries()
            if executor.windows is not None:
                self.status.open_windows = executor.windows.open_windows()
        self.metrics.set_sizes(self.status.state_entries, self.status.open_windows)

    def _write_status(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_status < self.options.status_interval:
            return
        self._last_status = now
        self._note_live_numbers()
        path = self.options.status_file
        if path is None:
            return
        try:
            write_status(path, self.status)
        except OSError as exc:  # pragma: no cover - a full disk must not stop the stream
            log.warning("cannot write status file %s: %s", path, exc)

    # -- running -------------------------------------------------------------------------

    async def _consume_loop(self) -> None:
        consumer = self._consumer
        executor = self._executor
        assert executor is not None
        topics = [t for t in self.inlet_of if t not in self.replay_of]
        replay = self._replay
        if topics:
            consumer.subscribe(
                topics,
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
        else:
            self.health.ready = True  # only replay inlets: nothing to be assigned
        log.info(
            "%s: consuming %s as group %s",
            self.label,
            ", ".join(topics),
            group_id(self.blueprint, self.name),
        )
        options = self.options
        batch_size, poll_timeout = options.batch_size, options.poll_timeout
        single_inlet = next(iter(self.inlet_of.values())) if len(self.inlet_of) == 1 else None
        inlet_of = self.inlet_of
        state = self._state
        while not self._stop:
            if replay is not None:
                await self._process_replayed(replay.poll(0 if topics else poll_timeout))
            if state is not None and self.health.restoring:
                self._restore_step(state)
                raw = consumer.consume(batch_size, 0) if topics else []
            else:
                raw = consumer.consume(batch_size, poll_timeout) if topics else []
            if raw:
                batch = self._messages(raw)
                if single_inlet is not None:
                    batches = {single_inlet: batch}
                else:
                    batches = {}
                    for message in batch:
                        batches.setdefault(inlet_of[message.topic], []).append(message)
                runs = in_time_order(batches, self.tables) if self.tables else list(batches.items())
                for inlet, messages in runs:
                    if not messages:
                        continue
                    start = time.perf_counter()
                    emitted, dead = await executor.process_batch(inlet, messages)
                    self.metrics.process_latency.observe(time.perf_counter() - start)
                    self.metrics.batch_size.observe(len(messages))
                    self._send(emitted, dead)
            self._housekeeping(idle=not raw)
            await self._between_batches(idle=not raw)

    async def _between_batches(self, *, idle: bool) -> None:
        """The instance's timers when one is due; the windows' close at the end of the
        input (see :mod:`runner.kafka.end_of_input`), once the input is idle."""
        timers = self._timers
        if timers is not None and timers.due():
            self._send(*await timers.run_due())
        executor = self._executor
        if not idle or executor is None or executor.windows is None:
            return
        # Not before the group has assigned this process its partitions (if any), nor
        # while their stores catch up from the changelogs: a restarted process sees the
        # cue again, and windows closed from a half-restored store would come out partial
        # or not at all (the restore then brings them back open, and nothing closes them).
        if self.health.ready and not self.health.restoring and self._end_of_input.arrived():
            partitions = sorted({p for t, p in self._assigned if t in self.inlet_of})
            self._send(*executor.close_windows(partitions))
            self._commit()
            self._end_of_input.done = True
            self.status.windows_closed = True
            self._write_status(force=True)
            log.info("%s: the input has ended: closed the open windows", self.label)

    def _restore_step(self, state: KafkaState) -> None:
        """Move the restores of assigned partitions on; resume the partitions whose stores
        have caught up."""
        if state.begin_restores():
            self._commit()  # the markers' transaction: a read_committed reader sees them
        for partition in state.step():
            waiting = self._paused.pop(partition, [])
            if waiting:
                self._consumer.resume(waiting)
        self.health.restoring = state.restoring

    def _restore_source(self, state: KafkaState) -> None:
        """Catch a source's own state up from its changelog before ``setup()``."""
        state.assign([0])
        self.health.restoring = 1
        while state.restoring and not self._stop:
            self.health.beat()
            if state.begin_restores():
                self._commit()
            state.step(0.5)
            assert self._producer is not None
            self._producer.poll()
        self.health.restoring = 0

    def _messages(self, raw: list[Any]) -> list[Message]:
        """The records of a consumed batch as core messages; notes each partition's progress.

        ``consume()`` returns a partition's records as runs in offset order, so progress is
        noted once per run, not per record (the per-record path is the hot loop).
        """
        batch: list[Message] = []
        append = batch.append
        make = Message
        run_topic, run_partition, run_start = "", -1, 0
        for m in raw:
            err = m.error()
            if err is not None:
                skip_consumer_error(err, log, f"{self.label}: consumer")
                continue
            topic, partition = m.topic(), m.partition()
            if partition != run_partition or topic != run_topic:
                if run_start < len(batch):
                    self._advance(run_topic, run_partition, batch, run_start)
                run_topic, run_partition, run_start = topic, partition, len(batch)
            append(
                make(
                    m.value(),  # None: a tombstone
                    m.key(),
                    m.headers() or (),
                    topic,
                    partition,
                    m.offset(),
                    m.timestamp()[1],
                )
            )
        if run_start < len(batch):
            self._advance(run_topic, run_partition, batch, run_start)
        return batch

    def _advance(self, topic: str, partition: int, batch: list[Message], start: int) -> None:
        """Note that ``batch[start:]`` (records of one partition) will be processed."""
        assert self._checkpoint is not None
        self._checkpoint.advance(
            topic, partition, self.key_of[topic], batch[-1].offset + 1, len(batch) - start
        )

    async def _process_replayed(self, batches: dict[str, list[Message]]) -> None:
        """Process records of replay inlets (their offsets are never committed)."""
        executor = self._executor
        assert executor is not None
        for inlet, messages in batches.items():
            emitted, dead = await executor.process_batch(inlet, messages)
            self._send(emitted, dead)

    async def _start_replay(self) -> None:
        defaults: dict[str, Any] = {
            "client.id": client_id(self.blueprint, self.name, self.replica) + ".replay",
            # A group of its own that never commits: the partitions are assigned, not shared.
            "group.id": f"{group_id(self.blueprint, self.name)}.replay.{os.getpid()}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "logger": client_log,
        }
        self._replay = ReplayReader(
            self.settings.for_consumer(**defaults), self.replay_of, self.options.batch_size
        )
        await self._process_replayed(self._replay.start())

    async def _pump_source(self) -> None:
        """The source's records through the shared pump; commits and health between them,
        also while the source waits for input."""
        executor = self._executor
        assert executor is not None and self._stop_event is not None
        self.health.ready = True
        self.health.stall_seconds = float("inf")  # a source may wait for its input at will

        async def publish(emitted: list[Emitted], dead: list[DeadLetter]) -> None:
            self._send(emitted, dead)
            self._housekeeping()
            await self._between_batches(idle=False)

        async def tick() -> None:
            self._housekeeping()
            await self._between_batches(idle=False)

        pump = SourcePump(
            executor,
            publish,
            self._stop_event,
            batch_size=self.options.batch_size,
            # A draining source (an HTTP ingress) gets half the grace period to hand over
            # what it accepted; the rest is for the flush and the commit.
            drain_seconds=self.options.grace_period / 2,
            tick=tick,
        )
        await pump.run()
        if self._stop:
            log.info("%s: stopped the source", self.label)

    async def _idle(self) -> None:
        """No inlet of this streamlet is connected: wait for the stop."""
        assert self._stop_event is not None
        log.warning("%s: no inlet of this streamlet is connected to a topic; idle", self.label)
        await self._stop_event.wait()

    async def _run_instance(self) -> None:
        """setup(), the loop of this kind of streamlet, the final commit, teardown()."""
        executor = self._executor
        assert executor is not None
        async with instance_lifecycle(executor):
            self.status.state = "running"
            timers = Timers(executor)
            self._timers = timers if timers else None
            with frozen_heap():  # the stream allocates; what start-up made stays put
                if self.inlet_of:
                    if self.replay_of:
                        await self._start_replay()
                    self._consumer = self._make_consumer()
                    assert self._checkpoint is not None
                    self._checkpoint.consumer = self._consumer
                    await self._consume_loop()
                elif not self.spec.cls.inlets():
                    await self._pump_source()
                else:
                    await self._idle()
            self.status.state = "draining"
            self.health.stopping = True
            self._commit()

    def _fail(self, exc: BaseException) -> int:
        """Log a failure once, note it in the status and health; returns the exit status."""
        if isinstance(exc, StreamletFailed):
            self.status.error = str(exc)
            log.error("%s", exc)
            return EXIT_FAILED
        if isinstance(exc, LifecycleError):
            self.status.error = str(exc)
            attempt = self.options.attempt
            if attempt is None or attempt <= 1:
                log.error("%s\n%s", exc, exc.details)
            else:
                log.error(
                    "%s (attempt %d; the traceback is in the first one's log)",
                    exc,
                    attempt,
                )
            return EXIT_FAILED if exc.hook == "teardown" else EXIT_CRASH
        if isinstance(exc, (StreamletsError, KafkaException)):
            self.status.error = str(exc)
            kafka = isinstance(exc, (KafkaException, DeliveryError, BrokerUnreachable))
            log.error("%s: %s", self.label, exc)
            return EXIT_CRASH if kafka else EXIT_FAILED
        self.status.error = f"{type(exc).__name__}: {exc}"
        log.error("%s: unexpected error", self.label, exc_info=exc)
        return EXIT_CRASH

    def _starting_stopped(self) -> bool:
        """Between start-up attempts to reach the broker: the liveness beat (waiting for a
        broker is not a stall), and whether a stop was asked for."""
        self.health.beat()
        return self._stop

    def run(self) -> int:
        """Run until stopped, a bounded source ends, or a failure; returns the exit status."""
        self._loop = loop = asyncio.new_event_loop()
        self._stop_event = asyncio.Event()
        if self._stop:  # stopped before the loop existed
            self._stop_event.set()
        self._start_metrics()
        self._write_status(force=True)
        state = "failed"
        code = EXIT_CRASH
        try:
            if self.options.create_topics:
                ensure_topics(
                    self.settings.for_admin(),
                    plan_topics(
                        self.blueprint,
                        [self.name],
                        dead_letter_template=self.options.dead_letter_template,
                    ),
                    timeout=None,  # a broker that starts after us is waited for
                    stopping=self._starting_stopped,
                )
            # Outputs too large for the producer fail to encode (the error policy applies).
            limit = record_limit(self._producer_config())
            manager = self._state_manager()
            self._executor = Executor(
                self.spec,
                self.blueprint,
                record_limit=limit,
                state=manager,
                checkpoint_each_batch=False,  # the stores are checkpointed at commits
                codecs=TopicCodecs(self.options.registry),
            )
            self.status.stats = self._executor.stats
            self._check_restarts(self._executor.instance)
            self._register_streamlet_metrics()
            self._producer = self._make_producer()
            self._checkpoint = Checkpoint(
                self._producer,
                status=self.status,
                metrics=self.metrics,
                label=self.label,
                grace_period=self.options.grace_period,
                before_commit=self._flush_instance,
            )
            if self.exactly_once:
                self._producer.init_transactions(self.options.grace_period)
            if manager is not None:
                self._state = self._checkpoint.state = self._kafka_state(manager)
            self._last_commit = time.monotonic()
            if self._state is not None and self._state.source:
                self._restore_source(self._state)
            if self._state is not None and self._state.restoring:
                # A source that has not caught up would generate from an old position.
                log.info("%s: stopped while restoring its state, before generating", self.label)
            else:
                loop.run_until_complete(self._run_instance())
            state, code = "done", 0
        except StartupStopped:
            log.info("%s: stopped during start-up, before taking any input", self.label)
            state, code = "done", 0
        except Exception as exc:
            code = self._fail(exc)
        finally:
            if code != 0 and self._checkpoint is not None:
                self._checkpoint.broken = True  # a half-processed batch must not be committed
            self.health.failed = None if code == 0 else (self.status.error or "failed")
            self._close_clients()
            self.status.state = state
            self._write_status(force=True)
            if self._server is not None:
                self._server.stop()
            self._stop_event = None
            loop.close()
        return code

    def _state_manager(self) -> StateManager | None:
        """The streamlet's keyed state, in RocksDB stores under this process's state
        directory (``None`` when it declares none)."""
        if not self.stateful:
            return None
        directory = process_state_dir(
            self.options.state_dir, self.blueprint, self.name, self.replica
        )
        log.info("%s: state stores in %s", self.label, directory)

        def opener(partition: int) -> PartitionStore:
            return open_store(directory, partition)

        is_source = not self.spec.cls.inlets()
        return StateManager(
            self.name,
            spec_states(self.spec),
            opener,
            changelog=True,
            source=is_source,
            own_key=source_key(self.replica),
        )

    def _kafka_state(self, manager: StateManager) -> KafkaState:
        """The changelog side of ``manager``: its producer is the outputs'."""
        assert self._producer is not None
        defaults: dict[str, Any] = {
            "client.id": client_id(self.blueprint, self.name, self.replica) + ".restore",
            # A group of its own that never joins or commits: partitions are assigned.
            "group.id": f"{group_id(self.blueprint, self.name)}.restore.{os.getpid()}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            # The end of a restore is a fetch that waits for the marker: not for long.
            "fetch.wait.max.ms": 100,
            "logger": client_log,
        }
        return KafkaState(
            manager,
            self._producer,
            app=self.app,
            streamlet=self.name,
            consumer_config=self.settings.for_consumer(**defaults),
            metrics=self.metrics,
            label=self.label,
            source=manager.own is not None,
        )

    def _register_streamlet_metrics(self) -> None:
        """Export a streamlet's own metrics: its ``metrics`` attribute, when that is a
        Prometheus collector (the model-serving streamlet's per-model series)."""
        assert self._executor is not None
        collector: Any = getattr(self._executor.instance, "metrics", None)
        if collector is not None and callable(getattr(collector, "collect", None)):
            self.metrics.registry.register(collector)

    def _start_metrics(self) -> None:
        if self.options.metrics_port is None:
            return
        self._server = MetricsServer(
            self.metrics,
            self.health,
            host=self.options.metrics_host,
            port=self.options.metrics_port,
        ).start()
        self.status.metrics_port = self._server.port
        log.info(
            "%s: metrics on http://%s:%d/metrics",
            self.label,
            self.options.metrics_host,
            self._server.port,
        )

    def _close_clients(self) -> None:
        if self._replay is not None:
            with contextlib.suppress(Exception):
                self._replay.close()
            self._replay = None
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                self._consumer.close()  # its revocation may still commit (and checkpoint)
            self._consumer = None
        if self._state is not None:
            with contextlib.suppress(Exception):
                self._state.close()
            self._state = None
        elif self._executor is not None and self._executor.state is not None:
            self._executor.state.close()
        if self._producer is not None:
            self._producer.close()
            self._producer = None
