"""Reading dead-letter topics back: for a run's directory and for ``flow dead-letters``.

A reader of its own (no consumer group membership, nothing committed) is assigned every
partition of the topics, from their beginning or from where they ended when it started.
How far to read is decided by counting records, not from the high watermark (some brokers
report it wrongly, see :mod:`runner.kafka.completion`): until as many as expected were
read, or nothing new came for a while.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from runner.kafka.dead_letters import dead_letter_from_record
from runner.kafka.logs import client_log
from runner.kafka.settings import KafkaSettings
from runner.runtime.messages import DeadLetter

__all__ = ["DeadLetterReader"]

_BATCH = 1000


class DeadLetterReader:
    """The dead letters on ``topics`` (Kafka topic names), read as :class:`DeadLetter` values.

    ``from_beginning`` reads what the topics hold; otherwise only what is written to them
    after :meth:`start` (a run that shares a broker with earlier ones). Topics the broker
    does not have are left out (:attr:`missing` names them). Records on the topics that
    are no dead letters (without the error headers) are counted in :attr:`foreign`.
    """

    def __init__(
        self, settings: KafkaSettings, topics: Sequence[str], *, from_beginning: bool = True
    ) -> None:
        self.topics = tuple(dict.fromkeys(topics))
        self.from_beginning = from_beginning
        self.missing: tuple[str, ...] = ()
        self.read = 0
        self.foreign = 0
        self._settings = settings
        self._consumer: Any = None

    def start(self, timeout: float = 10.0) -> None:
        """Connect and take the partitions (a no-op when started already)."""
        if self._consumer is not None or not self.topics:
            return
        consumer = Consumer(
            self._settings.for_consumer(
                **{
                    "group.id": f"streamlets.dead-letters.{os.getpid()}.{id(self)}",
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "auto.offset.reset": "earliest",
                    "logger": client_log,
                }
            )
        )
        # Ask for every topic's metadata: a request that names a missing topic makes some
        # brokers create it.
        metadata = consumer.list_topics(timeout=timeout)
        assigned, missing = [], []
        for topic in self.topics:
            found = metadata.topics.get(topic)
            if found is None or found.error is not None:
                missing.append(topic)
                continue
            for partition in sorted(found.partitions):
                offset = OFFSET_BEGINNING
                if not self.from_beginning:
                    _, offset = consumer.get_watermark_offsets(
                        TopicPartition(topic, partition), timeout=timeout
                    )
                assigned.append(TopicPartition(topic, partition, offset))
        self.missing = tuple(missing)
        consumer.assign(assigned)
        self._consumer = consumer

    def poll(self, timeout: float = 0.1) -> list[DeadLetter]:
        """What came since the last poll (waits up to ``timeout`` for the first record)."""
        self.start()
        if self._consumer is None:
            return []
        found: list[DeadLetter] = []
        batch = self._consumer.consume(_BATCH, timeout)
        while batch:
            for message in batch:
                if message.error() is not None:
                    continue
                _, stamp = message.timestamp()
                dead = dead_letter_from_record(
                    message.value(), message.key(), message.headers(), stamp
                )
                if dead is None:
                    self.foreign += 1
                else:
                    found.append(dead)
            batch = self._consumer.consume(_BATCH, 0) if len(batch) == _BATCH else []
        self.read += len(found)
        return found

    def read_until(
        self, expected: int | None = None, *, idle: float = 1.5, timeout: float = 30.0
    ) -> list[DeadLetter]:
        """Poll until ``expected`` dead letters were read in all, or nothing new came for
        ``idle`` seconds, or ``timeout`` seconds passed; returns what was read in this
        call."""
        found: list[DeadLetter] = []
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            if expected is not None and self.read >= expected:
                break
            more = self.poll(0.2)
            now = time.monotonic()
            if more:
                found += more
                quiet_since = now
            elif now - quiet_since >= idle:
                break
        return found

    def close(self) -> None:
        """Close the consumer (it is no group member: nothing to leave or commit)."""
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                self._consumer.close()
            self._consumer = None
