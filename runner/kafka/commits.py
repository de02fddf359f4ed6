"""Commits: how finished work becomes durable, at-least-once or exactly-once.

* **at-least-once**: the producer is flushed, and the input offsets are committed only when
  every output and dead letter produced so far was acknowledged.
* **exactly-once**: outputs and input offsets go into one Kafka transaction
  (``send_offsets_to_transaction``), committed together.

A stateful streamlet's changes go to its changelog topics in the same step: in the
transaction, or, at-least-once, produced once the outputs they follow are acknowledged
and acknowledged themselves before the offsets are committed. Outputs first: a process
killed during the commit may leave changelog entries on the broker whose input records
are read again after the restart, and the state they describe must not be ahead of what
went out (a window whose closing the changelog holds, but whose result was never
delivered, would be lost: its records are late when they come again). The state stores
are checkpointed after that, before the offsets are committed (see
:mod:`runner.kafka.changelogs`).

After a failure (fenced, aborted, undelivered) nothing more is committed: the process
stops and its uncommitted records are processed again after a restart.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from runner.kafka.metrics import StreamletMetrics
from runner.kafka.producing import FENCED_CODES, DeliveryError, OutputProducer, ProducerFenced
from runner.kafka.status import ProcessStatus

if TYPE_CHECKING:
    from runner.kafka.changelogs import KafkaState

__all__ = ["Checkpoint"]

log = logging.getLogger("streamlets.runner.kafka")

_REBALANCE_CODES = {
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError._ASSIGNMENT_LOST,
}


class _Partition:
    """Progress on one input partition since the last commit."""

    __slots__ = ("count", "next_offset", "topic_key")

    def __init__(self, topic_key: str) -> None:
        self.topic_key = topic_key
        self.next_offset = -1
        self.count = 0


class Checkpoint:
    """The input progress since the last commit, and the commit itself.

    ``label`` names the process in log lines; ``status`` receives the committed input
    counts and acknowledged output counts per blueprint topic; ``consumer`` is set once
    the process has one (a source has none).
    """

    def __init__(
        self,
        producer: OutputProducer,
        *,
        status: ProcessStatus,
        metrics: StreamletMetrics,
        label: str,
        grace_period: float,
        before_commit: Callable[[], None] | None = None,
    ) -> None:
        self.producer = producer
        self.before_commit = before_commit
        self.status = status
        self.metrics = metrics
        self.label = label
        self.grace_period = grace_period
        self.consumer: Any = None
        #: The process's keyed state, when its streamlet has any.
        self.state: KafkaState | None = None
        self.broken = False  # after a failure nothing more may be committed
        self._partitions: dict[tuple[str, int], _Partition] = {}

    @property
    def exactly_once(self) -> bool:
        """Whether commits are transactions."""
        return self.producer.transactional_id is not None

    def advance(self, topic: str, partition: int, topic_key: str, next_offset: int, n: int) -> None:
        """Note that ``n`` more records of ``topic[partition]``, up to ``next_offset``
        (exclusive), will be finished by the next commit."""
        part = self._partitions.get((topic, partition))
        if part is None:
            part = self._partitions[(topic, partition)] = _Partition(topic_key)
        part.next_offset = next_offset
        part.count += n

    def forget(self, topic: str, partition: int) -> None:
        """Drop the progress of a partition this process no longer owns."""
        self._partitions.pop((topic, partition), None)

    def _offsets(self) -> list[Any]:
        return [
            TopicPartition(topic, partition, part.next_offset)
            for (topic, partition), part in self._partitions.items()
            if part.count
        ]

    def commit(self, *, timeout: float | None = None) -> bool:
        """Make finished work durable: flush outputs, then commit offsets (or the
        transaction). Returns whether there was anything to commit."""
        if self.broken:
            return False
        producer = self.producer
        state = self.state
        dirty = any(p.count for p in self._partitions.values())
        changed = state is not None and state.dirty
        if not dirty and not changed and not producer.pending and not producer.in_transaction:
            return False
        start = time.perf_counter()
        if self.before_commit is not None and dirty:
            self.before_commit()
        wait = self.grace_period if timeout is None else timeout
        offsets = self._offsets()
        try:
            if self.exactly_once:
                if state is not None:
                    state.send()
                self._commit_transaction(offsets, wait)
                if state is not None:
                    producer.flush(wait)  # serves the changelog entries' delivery reports
                    state.checkpoint()
            else:
                producer.flush(wait)
                if state is not None:
                    # The changes follow the outputs of the records that made them (a
                    # source's position, the records it is the position after).
                    if state.send():
                        producer.flush(wait)
                    state.checkpoint()
                if offsets and self.consumer is not None:
                    self._commit_offsets(offsets)
        except ProducerFenced:
            self.broken = True
            raise
        committed = self.status.committed
        for part in self._partitions.values():
            if part.count:
                committed[part.topic_key] = committed.get(part.topic_key, 0) + part.count
                part.count = 0
        produced = self.status.produced
        for key, n in producer.pending.items():
            produced[key] = produced.get(key, 0) + n
        producer.pending.clear()
        self.metrics.commits.inc()
        self.metrics.commit_latency.observe(time.perf_counter() - start)
        return True

    def _commit_transaction(self, offsets: list[Any], wait: float) -> None:
        """Commit the open transaction with the input offsets it covers."""
        producer = self.producer
        if offsets and self.consumer is not None:
            producer.begin()  # a batch may have produced nothing, its offsets still count
        if not producer.in_transaction:
            return
        try:
            if offsets and self.consumer is not None:
                producer.producer.send_offsets_to_transaction(
                    offsets, self.consumer.consumer_group_metadata(), wait
                )
            producer.producer.commit_transaction(wait)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if not isinstance(error, KafkaError):
                raise
            if error.code() in FENCED_CODES:
                self.broken = True
                raise ProducerFenced(
                    f"fenced: another process took over transactional id "
                    f"'{producer.transactional_id}' (is a second replica running with "
                    f"--replica {producer.replica}?); stopping without committing"
                ) from None
            if error.txn_requires_abort():
                with contextlib.suppress(KafkaException):
                    producer.producer.abort_transaction(wait)
                producer.in_transaction = False
                self.broken = True
                raise DeliveryError(
                    f"transaction aborted ({error.str()}); its input records will be "
                    "processed again after a restart"
                ) from None
            raise
        producer.in_transaction = False
        if producer.delivery_errors:
            producer.flush(0)  # raises

    def _commit_offsets(self, offsets: list[Any]) -> None:
        try:
            results = self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() in _REBALANCE_CODES:
                log.warning(
                    "%s: offsets not committed during a rebalance (%s); "
                    "the records will be read again",
                    self.label,
                    error.str(),
                )
                return
            raise
        for tp in results or ():
            if tp.error is not None:
                log.warning(
                    "%s: offset of %s[%d] not committed: %s",
                    self.label,
                    tp.topic,
                    tp.partition,
                    tp.error,
                )
