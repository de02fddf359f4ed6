"""Keyed state on Kafka (DESIGN §8): a store per input partition in the process's state
directory, kept durable by a compacted changelog topic per state, restored from it when a
partition is assigned.

Writing. The state changes of the records processed since the last commit are produced
to the changelog topics when the runner commits (the latest value of each key, or a
tombstone: a hot key is written once per commit, not once per record), through the
producer of the outputs, with the partition of the input record. At-least-once: they are
produced once the outputs are acknowledged (a state is never ahead of what went out),
and acknowledged before the input offsets are committed; exactly-once: they are in the
transaction with the outputs and the offsets. Then the stores are checkpointed:
one write batch per partition, holding the changelog offset the store has caught up to
(from the delivery reports). A store is therefore never ahead of its changelog; after a
crash it is behind at most by what the last commit wrote, and catches up from there.

A source's state (its position) is one value per replica, keyed by the replica
(``replica-<n>``: replicas of a source each generate their own records), in partition 0.
At-least-once it is produced only after the outputs of the records it follows are
acknowledged, so that a restarted source never skips a record that did not arrive; the
records produced since the last commit are what a SIGKILL can duplicate.

Restoring. When a partition is assigned, its records wait (the partition is paused) while
each of its stores catches up from its changelog: from the offset its last checkpoint
kept, not from the beginning, up to the end. The end is not taken from the broker's high
watermark: some brokers report it wrongly (the embedded Tansu answers 1 for a partition
holding hundreds of records), and even a right one does not say when a transaction still
open on the partition will land. Instead the restorer produces a *marker* of its own to
the changelog partition (a record under a fixed key, :data:`MARKER_KEY`, with a value
unique to this restore) and reads until it sees that marker come back. Everything written
before the marker is then read, on any broker: Kafka orders a partition, and a
read_committed reader only passes the marker once every transaction opened before it has
ended. The fixed key keeps compaction tidy (one marker per partition survives), and
markers are skipped when restoring. A store whose checkpointed offset lies beyond the
changelog's end (the topic was recreated, or the broker lost it) is emptied and rebuilt
from the whole changelog, as is an empty state directory.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from blueprint import VerifiedBlueprint
from runner.kafka.consumed import skip_consumer_error
from runner.kafka.metrics import StreamletMetrics
from runner.kafka.producing import OutputProducer
from runner.runtime.state import PartitionStore, RocksStore, StateManager, changelog_topic
from streamlets.errors import StreamletsError

__all__ = [
    "MARKER_KEY",
    "KafkaState",
    "StateStoreError",
    "process_state_dir",
    "source_key",
]

log = logging.getLogger("streamlets.runner.kafka")

#: The key of restore markers on changelog topics (no state name starts with NUL).
MARKER_KEY = b"\x00streamlets.restore-marker"
#: Changelog records a restore reads per poll at most.
_RESTORE_BATCH = 5000
#: Seconds between two log lines about a restore that is still going on.
_PROGRESS_SECONDS = 5.0


class StateStoreError(StreamletsError):
    """A state store cannot be opened (another process has it, or the disk refuses)."""


def _marker_delivered(restore: _Restore) -> Any:
    """The delivery report callback of ``restore``'s marker: notes where it landed."""

    def delivered(err: Any, msg: Any) -> None:
        if err is None:
            restore.marker_offset = msg.offset()

    return delivered


def process_state_dir(
    root: Path, blueprint: VerifiedBlueprint, streamlet: str, replica: int
) -> Path:
    """The state directory of one process under ``root``:
    ``<root>/<app>/<streamlet>-<replica>`` (processes sharing ``root`` never open the same
    store)."""
    return root / blueprint.name / f"{streamlet}-{replica}"


def source_key(replica: int) -> bytes:
    """The key of a source replica's own state: each replica keeps its own position."""
    return f"replica-{replica}".encode()


def open_store(directory: Path, partition: int) -> PartitionStore:
    """The RocksDB store of ``partition`` in ``directory``, with an error that says what
    to do when it cannot be opened."""
    path = directory / f"partition-{partition}"
    try:
        return RocksStore(path)
    except Exception as exc:  # rocksdict raises plain exceptions (a held lock: IO error)
        raise StateStoreError(
            f"cannot open the state store {path}: {exc}; is another process using this "
            "state directory (two processes with the same --replica, or the same "
            "--state-dir)? Give each process its own, or delete the directory to rebuild "
            "it from the changelog topics"
        ) from None


@dataclass
class _Restore:
    """The restore of one state of one partition, from its changelog."""

    state: str
    topic: str
    partition: int
    start: int | None  # the checkpointed changelog offset (None: from the beginning)
    token: bytes = field(default_factory=lambda: uuid.uuid4().hex.encode())  # noqa: PLW0108
    started: float = field(default_factory=time.monotonic)
    records: int = 0
    next_offset: int = 0
    first: bool = True
    done: bool = False
    #: Where the marker landed (its delivery report), once known.
    marker_offset: int | None = None


class KafkaState:
    """The durable side of one process's :class:`StateManager` on Kafka.

    ``producer`` is the outputs' producer (changelog entries and markers go through it, so
    that exactly-once puts them in the transaction); ``consumer_config`` is the complete
    config of the restore consumer (a read_committed consumer of its own group that is
    assigned partitions and never commits). ``source`` marks a source's state (see the
    module's docstring).
    """

    def __init__(
        self,
        manager: StateManager,
        producer: OutputProducer,
        *,
        app: str,
        streamlet: str,
        consumer_config: Mapping[str, Any],
        metrics: StreamletMetrics,
        label: str,
        source: bool = False,
    ) -> None:
        self.manager = manager
        self.producer = producer
        self.source = source
        self.metrics = metrics
        self.label = label
        self.topics = {s: changelog_topic(app, streamlet, s) for s in manager.states}
        self._state_of = {topic: state for state, topic in self.topics.items()}
        self._consumer_config = dict(consumer_config)
        self._consumer: Any = None
        #: (topic, partition) -> the offset after the last changelog entry acknowledged
        #: since the last checkpoint.
        self._delivered: dict[tuple[str, int], int] = {}
        #: Partitions assigned whose restore has not started yet / is under way.
        self._waiting: list[int] = []
        self._restores: dict[tuple[str, int], _Restore] = {}
        self._last_progress = 0.0

    # -- writing --------------------------------------------------------------------------

    @property
    def dirty(self) -> bool:
        """Whether changes wait to be written to the changelog or the stores."""
        return self.manager.pending

    def send(self) -> int:
        """Produce the changelog entries of the changes since the last call (inside the
        open transaction, under exactly-once); returns how many."""
        entries = self.manager.take_changelog()
        if not entries:
            return 0
        producer = self.producer
        producer.begin()
        topics = self.topics
        delivered = self._on_delivery
        for entry in entries:
            producer.produce_to(
                topics[entry.state], entry.partition, entry.key, entry.value, delivered
            )
        self.metrics.changelog_records.inc(len(entries))
        return len(entries)

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.producer.delivery_failed(err, msg)
            return
        key = (msg.topic(), msg.partition())
        offset = msg.offset() + 1
        if offset > self._delivered.get(key, 0):
            self._delivered[key] = offset

    def checkpoint(self) -> None:
        """Write the pending changes to the stores, with the changelog offsets they have
        caught up to: call it once their changelog entries are acknowledged (or their
        transaction committed)."""
        delivered, self._delivered = self._delivered, {}
        offsets = {
            (self._state_of[topic], partition): offset
            for (topic, partition), offset in delivered.items()
        }
        self.manager.checkpoint(offsets)

    # -- partitions -----------------------------------------------------------------------

    @property
    def restoring(self) -> int:
        """How many partitions wait for their stores to catch up."""
        return len(set(self._waiting) | {p for _, p in self._restores})

    def assign(self, partitions: Iterable[int]) -> None:
        """Partitions newly assigned: their stores catch up before their records are
        handled (:meth:`begin_restores`, then :meth:`step`)."""
        for partition in partitions:
            if partition not in self._waiting and not self._is_restoring(partition):
                self._waiting.append(partition)
        self.metrics.state_restoring.set(self.restoring)

    def _is_restoring(self, partition: int) -> bool:
        return any(p == partition for _, p in self._restores)

    def begin_restores(self) -> bool:
        """Open the stores of the assigned partitions, produce their markers and start
        reading their changelogs; returns whether markers went into a transaction (the
        caller commits it, so that a read_committed reader sees them)."""
        if not self._waiting:
            return False
        waiting, self._waiting = self._waiting, []
        consumer = self._restore_consumer()
        self._last_progress = time.monotonic()
        assigned: list[TopicPartition] = []
        producer = self.producer
        producer.begin()
        for partition in waiting:
            for state, topic in self.topics.items():
                start = self.manager.changelog_offset(state, partition)
                restore = _Restore(state, topic, partition, start)
                self._restores[(state, partition)] = restore
                producer.produce_to(
                    topic, partition, MARKER_KEY, restore.token, _marker_delivered(restore)
                )
                assigned.append(
                    TopicPartition(topic, partition, OFFSET_BEGINNING if start is None else start)
                )
                log.info(
                    "%s: restoring state '%s' of partition %d from %s, %s",
                    self.label,
                    state,
                    partition,
                    topic,
                    "from its beginning" if start is None else f"from offset {start}",
                )
        consumer.incremental_assign(assigned)
        return producer.in_transaction

    def step(self, budget: float = 0.2) -> list[int]:
        """Read the changelogs of restoring partitions for about ``budget`` seconds;
        returns the partitions whose stores have caught up (their records may go on)."""
        if not self._restores:
            return []
        consumer = self._consumer
        deadline = time.monotonic() + budget
        finished: list[int] = []
        self._check_beyond_end()
        while self._restores and time.monotonic() < deadline:
            raw = consumer.consume(_RESTORE_BATCH, min(budget, 0.1))
            if not raw:
                continue
            runs: dict[tuple[str, int], list[Any]] = {}
            for m in raw:
                err = m.error()
                if err is not None:
                    skip_consumer_error(err, log, f"{self.label}: restore consumer")
                    continue
                runs.setdefault((m.topic(), m.partition()), []).append(m)
            for (topic, partition), messages in runs.items():
                restore = self._restores.get((self._state_of[topic], partition))
                if restore is not None and not restore.done:
                    self._apply(restore, messages)
            finished += self._finish()
        self._report_progress()
        return finished

    def _check_beyond_end(self) -> None:
        """Rebuild the stores whose checkpoint lies beyond their changelog's end.

        The marker landed below the offset a store had caught up to: the changelog was
        recreated or the broker lost it (an embedded broker keeps topics in memory). A
        broker that answers a fetch beyond the end with "out of range" sends the reader
        back to the beginning (see :meth:`_apply`); one that waits for records there would
        keep the restore waiting for ever. Such a store is emptied and read again from
        the beginning of the changelog, as Kafka Streams does with a corrupted task.
        """
        for restore in self._restores.values():
            landed = restore.marker_offset
            if landed is None or restore.start is None or landed >= restore.start:
                continue
            if not restore.first:
                continue  # records arrived: _apply has seen where the changelog starts
            dropped = self.manager.drop(restore.state, restore.partition)
            log.warning(
                "%s: the changelog %s[%d] ends at offset %d, before offset %d, which the "
                "state store had caught up to (was the topic recreated, or the broker's "
                "data lost?); dropped %d value(s) and rebuilding the store from the changelog",
                self.label,
                restore.topic,
                restore.partition,
                landed,
                restore.start,
                dropped,
            )
            restore.start = None
            restore.first = False
            self._consumer.incremental_unassign([TopicPartition(restore.topic, restore.partition)])
            self._consumer.incremental_assign(
                [TopicPartition(restore.topic, restore.partition, OFFSET_BEGINNING)]
            )

    def _apply(self, restore: _Restore, messages: list[Any]) -> None:
        """Write one run of changelog records to the store; notes the marker."""
        manager = self.manager
        first = messages[0].offset()
        if restore.first:
            restore.first = False
            if restore.start is not None and first < restore.start:
                # The changelog starts again below what the store had caught up to: it was
                # recreated (or the broker lost it). The store is rebuilt from it.
                dropped = manager.drop(restore.state, restore.partition)
                log.warning(
                    "%s: the changelog %s[%d] ends before offset %d, which the state store "
                    "had caught up to (was the topic recreated?); dropped %d value(s) and "
                    "rebuilding the store from the changelog",
                    self.label,
                    restore.topic,
                    restore.partition,
                    restore.start,
                    dropped,
                )
        entries: list[tuple[bytes, bytes | None]] = []
        next_offset = restore.next_offset
        for m in messages:
            key = m.key()
            if key == MARKER_KEY:
                if m.value() == restore.token:
                    restore.done = True
                    next_offset = m.offset() + 1
                    break
                continue  # an older restore's marker
            if key is not None:
                entries.append((key, m.value()))
            next_offset = m.offset() + 1
        restore.next_offset = next_offset
        written = manager.restore(restore.state, restore.partition, entries, next_offset)
        restore.records += written
        if written:
            self.metrics.restored(restore.state, written)

    def _finish(self) -> list[int]:
        """Drop finished restores; returns the partitions none of whose states restore."""
        done = [key for key, r in self._restores.items() if r.done]
        if not done:
            return []
        unassign = []
        for key in done:
            restore = self._restores.pop(key)
            seconds = time.monotonic() - restore.started
            self.metrics.restore_seconds(restore.state, restore.partition, seconds)
            log.info(
                "%s: restored state '%s' of partition %d: %d record(s) in %.2f s",
                self.label,
                restore.state,
                restore.partition,
                restore.records,
                seconds,
            )
            unassign.append(TopicPartition(restore.topic, restore.partition))
        self._consumer.incremental_unassign(unassign)
        partitions = sorted({p for _, p in done} - {p for _, p in self._restores})
        self.metrics.state_restoring.set(self.restoring)
        return partitions

    def _report_progress(self) -> None:
        now = time.monotonic()
        if not self._restores or now - self._last_progress < _PROGRESS_SECONDS:
            return
        self._last_progress = now
        for restore in self._restores.values():
            self.metrics.restore_seconds(restore.state, restore.partition, now - restore.started)
            log.info(
                "%s: restoring state '%s' of partition %d: %d record(s) so far, at offset "
                "%d, waiting for the end marker",
                self.label,
                restore.state,
                restore.partition,
                restore.records,
                restore.next_offset,
            )

    def revoke(self, partitions: Iterable[int]) -> None:
        """Partitions taken away (after the commit that checkpointed them): their restores
        stop and their stores close."""
        self._close(partitions)

    def _close(self, partitions: Iterable[int]) -> None:
        gone = set(partitions)
        self._waiting = [p for p in self._waiting if p not in gone]
        stopped = [key for key in self._restores if key[1] in gone]
        if stopped and self._consumer is not None:
            with contextlib.suppress(KafkaException):
                self._consumer.incremental_unassign(
                    [TopicPartition(self.topics[s], p) for s, p in stopped]
                )
        for key in stopped:
            del self._restores[key]
        for partition in gone:
            self.manager.close_partition(partition)
        self.metrics.state_restoring.set(self.restoring)

    def lose(self, partitions: Iterable[int]) -> None:
        """Partitions lost without a commit: their pending changes are dropped (another
        member processes their records again) and their stores close."""
        self._close(partitions)

    def _restore_consumer(self) -> Any:
        if self._consumer is None:
            self._consumer = Consumer(self._consumer_config)
        return self._consumer

    def close(self) -> None:
        """Close the restore consumer and every store (pending changes are dropped: after
        a successful run the last commit has checkpointed them)."""
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                self._consumer.close()
            self._consumer = None
        self.manager.close()
