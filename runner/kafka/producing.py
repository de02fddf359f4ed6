"""The process's producer: outputs and dead letters onto their topics, delivery failures
noted as they are reported, and a flush that says whether everything arrived.

Records too large: the execution core refuses an output larger than the producer's
``message.max.bytes`` (the error policy applies, stage ``encode``; see
:mod:`runner.kafka.sizes`), and a dead letter is cut to fit (:func:`fit_dead_letter`). A
record the *broker* refuses as too large (its limit is below the producer's) is reported
by :meth:`OutputProducer.flush` as :class:`~runner.runtime.limits.RecordTooLarge`, which
stops the process (exit 1: a restart would fail the same way) with the setting to change:
the producer's ``message.max.bytes`` at or below the broker's limit makes such records
follow the error policy instead.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from runner.kafka.dead_letters import dead_letter_headers, fit_dead_letter
from runner.kafka.settings import redact
from runner.kafka.sizes import MESSAGE_MAX_BYTES_SETTING, message_max_bytes, record_overhead
from runner.runtime.limits import RecordTooLarge
from runner.runtime.messages import DeadLetter, Emitted
from streamlets.errors import StreamletsError

__all__ = ["FENCED_CODES", "DeliveryError", "OutputProducer", "ProducerFenced"]

log = logging.getLogger("streamlets.runner.kafka")

#: Errors that mean a newer producer with the same transactional id took over.
FENCED_CODES = {KafkaError.PRODUCER_FENCED, KafkaError._FENCED, KafkaError.INVALID_PRODUCER_EPOCH}


class DeliveryError(StreamletsError):
    """The broker did not acknowledge an output; offsets stay uncommitted."""


class ProducerFenced(StreamletsError):
    """A newer process with the same transactional id fenced this one (exactly-once)."""


class OutputProducer:
    """Produces a streamlet's outputs (by blueprint topic key) and dead letters.

    ``pending`` counts the records produced per topic key since the last commit (the
    status file reports them once acknowledged). With a ``transactional_id`` every record
    goes into the open transaction, begun on the first record after a commit.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        topic_names: Mapping[str, str],
        dead_letter_topic: str,
        app: str,
        replica: int,
        transactional_id: str | None = None,
    ) -> None:
        self.topic_names = topic_names
        self.dead_letter_topic = dead_letter_topic
        self.app = app
        self.replica = replica
        self.transactional_id = transactional_id
        self.pending: dict[str, int] = {}
        self.delivery_errors: list[str] = []
        self.too_large: str | None = None  # the first record the broker refused as too large
        self.max_bytes = message_max_bytes(config)
        self.fenced = False
        self.in_transaction = False
        full = {**config, "on_delivery": self._on_delivery}
        if transactional_id is not None:
            full["transactional.id"] = transactional_id
        log.debug("producer config: %s", redact(full))
        self.producer: Any = Producer(full)

    def _on_delivery(self, err: Any, msg: Any) -> None:
        # Only called for failures (delivery.report.only.error), except in a stateful
        # streamlet's process, which needs the changelog entries' offsets.
        if err is not None:
            self.delivery_failed(err, msg)

    def delivery_failed(self, err: Any, msg: Any) -> None:
        """Note a record the broker did not take (a delivery report's error)."""
        if err is not None:
            self.delivery_errors.append(f"{msg.topic()}: {err}")
            if err.code() in FENCED_CODES:
                self.fenced = True
            elif err.code() == KafkaError.MSG_SIZE_TOO_LARGE and self.too_large is None:
                size = len(msg.value() or b"") + record_overhead(msg.key(), msg.headers() or ())
                self.too_large = (
                    f"the broker refused a record of {size:,} bytes on topic '{msg.topic()}' "
                    f"as too large ({err.str()}): its limit (the topic's max.message.bytes, "
                    "or the broker's message.max.bytes) is below "
                    f"{MESSAGE_MAX_BYTES_SETTING}, {self.max_bytes:,}; set the producer's "
                    "to at most the broker's limit, so that records too large follow the "
                    "error policy and dead letters are cut to fit, or raise the topic's "
                    "max.message.bytes; input offsets stay uncommitted"
                )

    def init_transactions(self, timeout: float) -> None:
        """Register the transactional id (fencing an older process that had it)."""
        self.producer.init_transactions(timeout)

    def begin(self) -> None:
        """Open a transaction, when transactional and none is open."""
        if self.transactional_id is not None and not self.in_transaction:
            self.producer.begin_transaction()
            self.in_transaction = True

    def _produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        timestamp: int = 0,
    ) -> None:
        producer = self.producer
        while True:
            try:
                producer.produce(
                    topic,
                    value,
                    key,
                    headers=list(headers) if headers else None,
                    timestamp=max(timestamp, 0),
                )
                return
            except BufferError:
                producer.poll(0.05)  # the local queue is full: wait for acknowledgements
            except KafkaException as exc:
                raise self._refused(exc, topic, value, key, headers) from None

    def _refused(
        self,
        exc: KafkaException,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes]],
    ) -> Exception:
        """What to raise for a record ``produce()`` refused: :class:`RecordTooLarge` when
        it was too large (the execution core checks outputs before they get here, so this
        is a record whose key or headers the check did not count), else ``exc``."""
        error = exc.args[0] if exc.args else None
        if not (isinstance(error, KafkaError) and error.code() == KafkaError.MSG_SIZE_TOO_LARGE):
            return exc
        size = len(value or b"") + record_overhead(key, headers)
        return RecordTooLarge(
            f"a record of {size:,} bytes for topic '{topic}' is larger than "
            f"{MESSAGE_MAX_BYTES_SETTING}, {self.max_bytes:,}; make it smaller or raise the "
            "setting (and the topic's max.message.bytes on the broker with it)"
        )

    def produce_to(
        self,
        topic: str,
        partition: int,
        key: bytes,
        value: bytes | None,
        on_delivery: Any,
    ) -> None:
        """Produce one record to ``topic[partition]`` (a changelog entry, ``None`` a
        tombstone); ``on_delivery`` (or, when ``None``, the producer's own) gets its
        delivery report. Inside the open transaction, when there is one."""
        producer = self.producer
        extra = {} if on_delivery is None else {"on_delivery": on_delivery}
        while True:
            try:
                producer.produce(topic, value, key, partition=partition, **extra)
                return
            except BufferError:
                producer.poll(0.05)  # the local queue is full: wait for acknowledgements
            except KafkaException as exc:
                raise self._refused(exc, topic, value or b"", key, ()) from None

    def send(self, emitted: list[Emitted], dead: list[DeadLetter]) -> None:
        """Produce ``emitted`` to their topics and ``dead`` to the dead-letter topic."""
        if not emitted and not dead:
            return
        self.begin()
        names = self.topic_names
        pending = self.pending
        produce = self.producer.produce
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
                # A consumed record's list goes out as it is; tuples become lists.
                header_list = (
                    last_headers
                    if isinstance(last_headers, list)
                    else list(last_headers)
                    if last_headers
                    else None
                )
            # timestamp 0: none of its own, the producer stamps the time it is sent.
            timestamp = message.timestamp if message.timestamp > 0 else 0
            try:
                produce(
                    kafka_name,
                    message.value,
                    message.key,
                    headers=header_list,
                    timestamp=timestamp,
                )
            except (BufferError, KafkaException):
                self._produce(kafka_name, message.value, message.key, message.headers, timestamp)
            run += 1
        if run:
            pending[last_topic] = pending.get(last_topic, 0) + run
        for letter in dead:
            original = letter.original
            full = dead_letter_headers(letter, app=self.app, replica=self.replica)
            value, headers = fit_dead_letter(
                original.value,
                original.key,
                full,
                max_bytes=self.max_bytes,
                overhead=record_overhead,
                original_headers=len(original.headers),
            )
            if headers is not full:
                log.warning(
                    "dead letter of %s[%d]@%d: value cut from %d to %d bytes to fit %s "
                    "(%d); the original is still on that topic",
                    original.topic or "(source)",
                    original.partition,
                    original.offset,
                    len(original.value or b""),
                    len(value or b""),
                    MESSAGE_MAX_BYTES_SETTING,
                    self.max_bytes,
                )
            self._produce(self.dead_letter_topic, value, original.key, headers, original.timestamp)

    def poll(self) -> None:
        """Serve delivery reports; raises :class:`DeliveryError` once one failed."""
        self.producer.poll(0)
        if self.delivery_errors:
            self.flush(0)

    def flush(self, timeout: float) -> None:
        """Wait until every record produced so far is acknowledged.

        Raises :class:`DeliveryError` when some were not (within ``timeout`` or at all)
        and :class:`ProducerFenced` when a newer process took the transactional id.
        """
        left = self.producer.flush(timeout)
        if left:
            raise DeliveryError(
                f"{left} output record(s) were not acknowledged within {timeout:.0f} s; "
                "input offsets stay uncommitted (the records will be processed again)"
            )
        if self.too_large is not None:
            raise RecordTooLarge(self.too_large)
        if self.fenced:
            raise ProducerFenced(
                f"fenced: another process took over transactional id "
                f"'{self.transactional_id}'; stopping without committing"
            )
        if self.delivery_errors:
            first = self.delivery_errors[0]
            raise DeliveryError(
                f"{len(self.delivery_errors)} output record(s) could not be delivered "
                f"(first: {first}); input offsets stay uncommitted"
            )

    def close(self) -> None:
        """Abort an open transaction and give queued records a moment to go out."""
        if self.in_transaction:
            with contextlib.suppress(Exception):
                self.producer.abort_transaction(5)
            self.in_transaction = False
        with contextlib.suppress(Exception):
            self.producer.flush(1)
