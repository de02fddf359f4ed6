"""One streamlet instance on Kafka: consume -> execution core -> produce -> commit.

The transport around :class:`runner.runtime.executor.Executor` (the same core the in-process runner
uses). Delivery guarantees:

* **at-least-once** (default): outputs are produced with an idempotent producer; before
  input offsets are committed the producer is flushed, and a commit happens only when
  every output and dead letter produced so far was acknowledged. A process killed at any
  moment restarts from offsets whose outputs are all on the broker.
* **exactly-once**: outputs and input offsets go in one Kafka transaction
  (``send_offsets_to_transaction``); the transactional id is stable per replica, so a
  restarted replica fences its predecessor.

Partitions revoked in a rebalance have their finished work committed first; lost ones are
dropped (another member re-reads them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterable, Iterator, Sequence
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from blueprint import VerifiedBlueprint
from runner.kafka.admin import BrokerUnreachable, ensure_topics, plan_topics
from runner.kafka.consumed import skip_consumer_error
from runner.kafka.dead_letters import dead_letter_headers
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
from runner.kafka.replay import ReplayReader
from runner.kafka.settings import KafkaSettings, redact
from runner.kafka.status import ProcessStatus, write_status
from runner.runtime.errors import StreamletFailed
from runner.runtime.executor import Executor
from runner.runtime.heap import frozen_heap
from runner.runtime.messages import DeadLetter, Emitted, Message
from streamlets.errors import StreamletsError

__all__ = [
    "EXIT_CRASH",
    "EXIT_FAILED",
    "DeliveryError",
    "ProducerFenced",
    "StreamletProcess",
]

log = logging.getLogger("streamlets.runner.kafka")

#: Exit status when the streamlet failed on purpose (``on_error: fail``, bad config): a
#: restart would fail the same way.
EXIT_FAILED = 1
#: Exit status after an unexpected error (lost broker, failed delivery): worth a restart.
EXIT_CRASH = 70

_REBALANCE_CODES = {
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError._ASSIGNMENT_LOST,
}


class DeliveryError(StreamletsError):
    """The broker did not acknowledge an output; offsets stay uncommitted."""


class ProducerFenced(StreamletsError):
    """A newer process with the same transactional id fenced this one (exactly-once)."""


_FENCED_CODES = {KafkaError.PRODUCER_FENCED, KafkaError._FENCED, KafkaError.INVALID_PRODUCER_EPOCH}


class _Partition:
    """Progress on one input partition since the last commit."""

    __slots__ = ("count", "next_offset", "topic_key")

    def __init__(self, topic_key: str) -> None:
        self.topic_key = topic_key
        self.next_offset = -1
        self.count = 0


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
        self._replay: ReplayReader | None = None
        self.metrics = StreamletMetrics(self.app, name, self.replica)
        self.health = Health()
        self.status = ProcessStatus(name, self.replica, pid=os.getpid())
        self._stop = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: Executor | None = None
        self._consumer: Any = None
        self._producer: Any = None
        self._server: MetricsServer | None = None
        self._partitions: dict[tuple[str, int], _Partition] = {}
        self._produced_pending: dict[str, int] = {}
        self._delivery_errors: list[str] = []
        self._in_transaction = False
        self._broken = False  # after a failure nothing more may be committed
        self._fenced = False
        self._last_status = 0.0
        self._seen = (0, 0, 0, 0, 0)
        self._seen_stages: dict[str, int] = {}

    # -- control -------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask for a graceful stop (safe to call from a signal handler)."""
        self._stop = True
        self.health.stopping = True

    @property
    def stopping(self) -> bool:
        """Whether a stop was requested."""
        return self._stop

    # -- clients -------------------------------------------------------------------------

    def _on_delivery(self, err: Any, msg: Any) -> None:
        # Only called for failures (delivery.report.only.error).
        if err is not None:
            self._delivery_errors.append(f"{msg.topic()}: {err}")
            if err.code() in _FENCED_CODES:
                self._fenced = True

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

    def _make_producer(self) -> Any:
        defaults: dict[str, Any] = {
            "client.id": client_id(self.blueprint, self.name, self.replica),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "delivery.report.only.error": True,
            "on_delivery": self._on_delivery,
            "logger": client_log,
        }
        if self.exactly_once:
            defaults["transactional.id"] = transactional_id(self.blueprint, self.name, self.replica)
        config = self.settings.for_producer(**defaults)
        log.debug("producer config: %s", redact(config))
        return Producer(config)

    def _make_consumer(self) -> Any:
        defaults: dict[str, Any] = {
            "client.id": client_id(self.blueprint, self.name, self.replica),
            "group.id": group_id(self.blueprint, self.name),
            "group.protocol": "classic",
            "partition.assignment.strategy": "cooperative-sticky",
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
        return Consumer(config)

    # -- rebalances ----------------------------------------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self.health.ready = True
        if partitions:
            log.info(
                "%s-%d: assigned %s",
                self.name,
                self.replica,
                ", ".join(f"{p.topic}[{p.partition}]" for p in partitions),
            )

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        if not partitions:
            return
        log.info(
            "%s-%d: revoked %s; committing finished work",
            self.name,
            self.replica,
            ", ".join(f"{p.topic}[{p.partition}]" for p in partitions),
        )
        try:
            self._commit(force=True)
        except (KafkaException, DeliveryError) as exc:
            log.warning("%s-%d: commit before revocation failed: %s", self.name, self.replica, exc)
        for p in partitions:
            self._partitions.pop((p.topic, p.partition), None)
            self.metrics.forget_lag(p.topic, p.partition)

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        log.warning(
            "%s-%d: lost %d partition(s); their uncommitted records will be read again",
            self.name,
            self.replica,
            len(partitions),
        )
        for p in partitions:
            self._partitions.pop((p.topic, p.partition), None)
            self.metrics.forget_lag(p.topic, p.partition)

    # -- producing -----------------------------------------------------------------------

    def _begin(self) -> None:
        if self.exactly_once and not self._in_transaction:
            self._producer.begin_transaction()
            self._in_transaction = True

    def _produce(
        self, topic: str, value: bytes, key: bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> None:
        producer = self._producer
        while True:
            try:
                producer.produce(topic, value, key, headers=list(headers) if headers else None)
                return
            except BufferError:
                producer.poll(0.05)  # the local queue is full: wait for acknowledgements

    def _send(self, emitted: list[Emitted], dead: list[DeadLetter]) -> None:
        if not emitted and not dead:
            return
        self._begin()
        names = self.topic_names
        pending = self._produced_pending
        produce = self._producer.produce
        # Records of one outlet share one headers tuple; librdkafka wants a list.
        last_headers: Any = None
        header_list: list[tuple[str, bytes]] | None = None
        last_topic = ""
        kafka_name = ""
        run = 0
        for item in emitted:
            message = item.message
            if item.topic is not last_topic:
                if run:
                    pending[last_topic] = pending.get(last_topic, 0) + run
                    run = 0
                last_topic = item.topic
                kafka_name = names[last_topic]
            if message.headers is not last_headers:
                last_headers = message.headers
                header_list = list(last_headers) if last_headers else None
            try:
                produce(kafka_name, message.value, message.key, headers=header_list)
            except BufferError:
                self._produce(kafka_name, message.value, message.key, message.headers)
            run += 1
        if run:
            pending[last_topic] = pending.get(last_topic, 0) + run
        for letter in dead:
            original = letter.original
            headers = dead_letter_headers(letter, app=self.app, replica=self.replica)
            self._produce(self.dead_letter_topic, original.value, original.key, headers)

    # -- committing ----------------------------------------------------------------------

    def _flush(self, timeout: float) -> None:
        left = self._producer.flush(timeout)
        if left:
            raise DeliveryError(
                f"{left} output record(s) were not acknowledged within {timeout:.0f} s; "
                "input offsets stay uncommitted (the records will be processed again)"
            )
        if self._fenced:
            self._broken = True
            tx_id = transactional_id(self.blueprint, self.name, self.replica)
            raise ProducerFenced(
                f"fenced: another process took over transactional id '{tx_id}'; stopping "
                "without committing"
            )
        if self._delivery_errors:
            first = self._delivery_errors[0]
            raise DeliveryError(
                f"{len(self._delivery_errors)} output record(s) could not be delivered "
                f"(first: {first}); input offsets stay uncommitted"
            )

    def _offsets(self) -> list[Any]:
        return [
            TopicPartition(topic, partition, part.next_offset)
            for (topic, partition), part in self._partitions.items()
            if part.count
        ]

    def _commit(self, *, force: bool = False, timeout: float | None = None) -> None:
        """Make finished work durable: flush outputs, then commit offsets (or the transaction)."""
        if self._broken:
            return
        dirty = any(p.count for p in self._partitions.values())
        if not dirty and not self._produced_pending and not self._in_transaction:
            return
        start = time.perf_counter()
        wait = self.options.grace_period if timeout is None else timeout
        offsets = self._offsets()
        if self.exactly_once:
            self._commit_transaction(offsets, wait)
        else:
            self._flush(wait)
            if offsets and self._consumer is not None:
                self._commit_offsets(offsets)
        for part in self._partitions.values():
            if part.count:
                committed = self.status.committed
                committed[part.topic_key] = committed.get(part.topic_key, 0) + part.count
                part.count = 0
        produced = self.status.produced
        for key, n in self._produced_pending.items():
            produced[key] = produced.get(key, 0) + n
        self._produced_pending.clear()
        self.metrics.commits.inc()
        self.metrics.commit_latency.observe(time.perf_counter() - start)
        self._write_status(force=True)

    def _commit_transaction(self, offsets: list[Any], wait: float) -> None:
        """Commit the open transaction with the input offsets it covers."""
        producer = self._producer
        if offsets and self._consumer is not None:
            self._begin()  # a batch may have produced nothing, its offsets still count
        if not self._in_transaction:
            return
        try:
            if offsets and self._consumer is not None:
                producer.send_offsets_to_transaction(
                    offsets, self._consumer.consumer_group_metadata(), wait
                )
            producer.commit_transaction(wait)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if not isinstance(error, KafkaError):
                raise
            tx_id = transactional_id(self.blueprint, self.name, self.replica)
            if error.code() in _FENCED_CODES:
                self._broken = True
                raise ProducerFenced(
                    f"fenced: another process took over transactional id '{tx_id}' (is a "
                    f"second replica running with --replica {self.replica}?); stopping "
                    "without committing"
                ) from None
            if error.txn_requires_abort():
                with contextlib.suppress(KafkaException):
                    producer.abort_transaction(wait)
                self._in_transaction = False
                self._broken = True
                raise DeliveryError(
                    f"transaction aborted ({error.str()}); its input records will be "
                    "processed again after a restart"
                ) from None
            raise
        self._in_transaction = False
        if self._delivery_errors:
            self._flush(0)  # raises

    def _commit_offsets(self, offsets: list[Any]) -> None:
        try:
            results = self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() in _REBALANCE_CODES:
                log.warning(
                    "%s-%d: offsets not committed during a rebalance (%s); "
                    "the records will be read again",
                    self.name,
                    self.replica,
                    error.str(),
                )
                return
            raise
        for tp in results or ():
            if tp.error is not None:
                log.warning(
                    "%s-%d: offset of %s[%d] not committed: %s",
                    self.name,
                    self.replica,
                    tp.topic,
                    tp.partition,
                    tp.error,
                )

    # -- status and metrics --------------------------------------------------------------

    def _sync_metrics(self) -> None:
        executor = self._executor
        if executor is None:
            return
        s = executor.stats
        now = (s.records_in, s.records_out, s.errors, s.dead_lettered, s.skipped)
        before = self._seen
        if now != before:
            m = self.metrics
            if now[0] > before[0]:
                m.records_in.inc(now[0] - before[0])
            if now[1] > before[1]:
                m.records_out.inc(now[1] - before[1])
            if now[3] > before[3]:
                m.dead_letters.inc(now[3] - before[3])
            if now[4] > before[4]:
                m.skipped.inc(now[4] - before[4])
            if now[2] > before[2]:
                for stage, n in s.by_stage.items():
                    seen = self._seen_stages.get(stage, 0)
                    if n > seen:
                        m.error(stage, n - seen)
                        self._seen_stages[stage] = n
            self._seen = now

    def _write_status(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_status < self.options.status_interval:
            return
        self._last_status = now
        self._sync_metrics()
        path = self.options.status_file
        if path is None:
            return
        executor = self._executor
        if executor is not None:
            s = executor.stats
            st = self.status
            st.records_in, st.records_out, st.errors = s.records_in, s.records_out, s.errors
            st.dead_lettered, st.skipped = s.dead_lettered, s.skipped
            st.process_seconds = s.process_seconds
        try:
            write_status(path, self.status)
        except OSError as exc:  # pragma: no cover - a full disk must not stop the stream
            log.warning("cannot write status file %s: %s", path, exc)

    # -- running -------------------------------------------------------------------------

    def _run_async(self, awaitable: Any) -> Any:
        assert self._loop is not None
        return self._loop.run_until_complete(awaitable)

    def _consume_loop(self) -> None:
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
            "%s-%d: consuming %s as group %s",
            self.name,
            self.replica,
            ", ".join(topics),
            group_id(self.blueprint, self.name),
        )
        options = self.options
        batch_size, poll_timeout = options.batch_size, options.poll_timeout
        last_commit = time.monotonic()
        single_inlet = next(iter(self.inlet_of.values())) if len(self.inlet_of) == 1 else None
        inlet_of = self.inlet_of
        producer = self._producer
        while not self._stop:
            if replay is not None:
                self._process_replayed(replay.poll(0 if topics else poll_timeout))
            raw = consumer.consume(batch_size, poll_timeout) if topics else []
            self.health.beat()
            if raw:
                batch = self._messages(raw)
                if single_inlet is not None:
                    batches = {single_inlet: batch}
                else:
                    batches = {}
                    for message in batch:
                        batches.setdefault(inlet_of[message.topic], []).append(message)
                for inlet, messages in batches.items():
                    if not messages:
                        continue
                    start = time.perf_counter()
                    emitted, dead = self._run_async(executor.process_batch(inlet, messages))
                    self.metrics.process_latency.observe(time.perf_counter() - start)
                    self.metrics.batch_size.observe(len(messages))
                    self._send(emitted, dead)
            producer.poll(0)
            if self._delivery_errors:
                self._flush(0)  # raises DeliveryError
            now = time.monotonic()
            if now - last_commit >= options.commit_interval or not raw:
                self._commit()
                last_commit = now
            self._write_status()

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
                skip_consumer_error(err, log, f"{self.name}-{self.replica}: consumer")
                continue
            topic, partition = m.topic(), m.partition()
            if partition != run_partition or topic != run_topic:
                if run_start < len(batch):
                    self._advance(run_topic, run_partition, batch, run_start)
                run_topic, run_partition, run_start = topic, partition, len(batch)
            headers = m.headers()
            append(
                make(
                    m.value() or b"",
                    m.key(),
                    tuple(headers) if headers else (),
                    topic,
                    partition,
                    m.offset(),
                )
            )
        if run_start < len(batch):
            self._advance(run_topic, run_partition, batch, run_start)
        return batch

    def _advance(self, topic: str, partition: int, batch: list[Message], start: int) -> None:
        """Note that ``batch[start:]`` (records of one partition) will be processed."""
        part = self._partitions.get((topic, partition))
        if part is None:
            part = self._partitions[(topic, partition)] = _Partition(self.key_of[topic])
        part.next_offset = batch[-1].offset + 1
        part.count += len(batch) - start

    def _process_replayed(self, batches: dict[str, list[Message]]) -> None:
        """Process records of replay inlets (their offsets are never committed)."""
        executor = self._executor
        assert executor is not None
        for inlet, messages in batches.items():
            emitted, dead = self._run_async(executor.process_batch(inlet, messages))
            self._send(emitted, dead)

    def _start_replay(self) -> None:
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
        self._process_replayed(self._replay.start())

    def _generate_items(self) -> Iterator[Any]:
        assert self._executor is not None
        produced = self._executor.instance.generate()
        if isinstance(produced, AsyncIterable):
            iterator: Any = produced.__aiter__()
            try:
                while True:
                    try:
                        yield self._run_async(iterator.__anext__())
                    except StopAsyncIteration:
                        return
            finally:
                aclose = getattr(iterator, "aclose", None)
                if aclose is not None:
                    self._run_async(aclose())
        else:
            yield from produced

    def _source_loop(self) -> None:
        executor = self._executor
        assert executor is not None
        self.health.ready = True
        self.health.stall_seconds = float("inf")  # a source may wait for its input at will
        producer = self._producer
        last_commit = time.monotonic()
        emitted: list[Emitted] = []
        dead: list[DeadLetter] = []
        items = self._generate_items()
        try:
            for n, item in enumerate(items):
                executor.encode_generated(item, emitted, dead)
                self._send(emitted, dead)
                emitted.clear()
                dead.clear()
                if n % 256 == 0:
                    self.health.beat()
                    producer.poll(0)
                    if self._delivery_errors:
                        self._flush(0)
                    now = time.monotonic()
                    if now - last_commit >= self.options.commit_interval:
                        self._commit()
                        last_commit = now
                    self._write_status()
                if self._stop:
                    log.info("%s-%d: stopping the source", self.name, self.replica)
                    break
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

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
            "%s-%d: metrics on http://%s:%d/metrics",
            self.name,
            self.replica,
            self.options.metrics_host,
            self._server.port,
        )

    def run(self) -> int:
        """Run until stopped, a bounded source ends, or a failure; returns the exit status."""
        self._loop = asyncio.new_event_loop()
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
                )
            self._executor = Executor(self.spec, self.blueprint)
            self._register_streamlet_metrics()
            self._producer = self._make_producer()
            if self.exactly_once:
                self._producer.init_transactions(self.options.grace_period)
            self._run_async(self._executor.setup())
            try:
                self.status.state = "running"
                with frozen_heap():  # the stream allocates; what start-up made stays put
                    if self.inlet_of:
                        if self.replay_of:
                            self._start_replay()
                        self._consumer = self._make_consumer()
                        self._consume_loop()
                    elif not self.spec.cls.inlets():
                        self._source_loop()
                    else:
                        log.warning(
                            "%s-%d: no inlet of this streamlet is connected to a topic; idle",
                            self.name,
                            self.replica,
                        )
                        while not self._stop:
                            time.sleep(0.2)
                self.status.state = "draining"
                self.health.stopping = True
                self._commit(force=True)
            finally:
                try:
                    self._run_async(self._executor.teardown())
                except Exception as exc:
                    log.warning("%s-%d: teardown() failed: %r", self.name, self.replica, exc)
            state, code = "done", 0
        except StreamletFailed as exc:
            self.status.error = str(exc)
            log.error("%s", exc)
            code = EXIT_FAILED
        except (StreamletsError, KafkaException) as exc:
            self.status.error = str(exc)
            kafka = isinstance(exc, (KafkaException, DeliveryError, BrokerUnreachable))
            log.error("%s-%d: %s", self.name, self.replica, exc)
            code = EXIT_CRASH if kafka else EXIT_FAILED
        except Exception as exc:
            self.status.error = f"{type(exc).__name__}: {exc}"
            log.exception("%s-%d: unexpected error", self.name, self.replica)
            code = EXIT_CRASH
        finally:
            if code != 0:
                self._broken = True  # a half-processed batch must not be committed on close
            self.health.failed = None if code == 0 else (self.status.error or "failed")
            self._close_clients()
            self.status.state = state
            self._write_status(force=True)
            if self._server is not None:
                self._server.stop()
            self._loop.close()
        return code

    def _close_clients(self) -> None:
        if self._replay is not None:
            with contextlib.suppress(Exception):
                self._replay.close()
            self._replay = None
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                self._consumer.close()
            self._consumer = None
        if self._producer is not None:
            if self._in_transaction:
                with contextlib.suppress(Exception):
                    self._producer.abort_transaction(5)
            with contextlib.suppress(Exception):
                self._producer.flush(1)
            self._producer = None
