"""Replay inlets on Kafka: every replica reads the whole topic, from its beginning.

A streamlet's ``replay_inlets`` (the model-serving streamlet's ``control``) carry state,
not work: every replica needs every record, and the latest one must be there again after a
restart. So these topics are not part of the consumer group: a consumer of their own is
*assigned* every partition at the beginning and never commits; the topic should be
compacted (``config: {cleanup.policy: compact}`` in the blueprint) so that the beginning is
the latest state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from runner.kafka.consumed import skip_consumer_error
from runner.runtime.messages import Message

__all__ = ["ReplayReader"]

log = logging.getLogger("streamlets.kafka")

#: How long start-up waits for the replay topics to be read up to their end.
CATCH_UP_SECONDS = 10.0


class ReplayReader:
    """Reads the replay inlets' topics (``topics``: Kafka topic -> inlet) in full."""

    def __init__(self, config: Mapping[str, Any], topics: Mapping[str, str], batch_size: int):
        self.topics = dict(topics)
        self.batch_size = batch_size
        # Any: the stubs type every field of a message as optional; a fetched one has them all.
        self._consumer: Any = Consumer(dict(config))

    def start(self, timeout: float = CATCH_UP_SECONDS) -> dict[str, list[Message]]:
        """Assign every partition from the beginning; read up to the end (bounded by
        ``timeout``) and return what was read, per inlet."""
        consumer = self._consumer
        assigned: list[TopicPartition] = []
        for topic in self.topics:
            metadata = consumer.list_topics(topic, timeout=timeout)
            found = metadata.topics.get(topic)
            if found is None or found.error is not None:
                raise KafkaException(
                    KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, f"no topic {topic!r}")
                )
            assigned += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in found.partitions]
        consumer.assign(assigned)
        ends: dict[tuple[str, int], int] = {}
        for tp in assigned:
            _, high = consumer.get_watermark_offsets(tp, timeout=timeout)
            if high > 0:
                ends[(tp.topic, tp.partition)] = high
        read: dict[str, list[Message]] = {}
        deadline = time.monotonic() + timeout
        empty_polls = 0
        # The broker's high watermark may be off (Tansu): stop at the ends, after two quiet
        # polls, or at the deadline, whichever comes first.
        while ends and time.monotonic() < deadline and empty_polls < 2:
            batch = self.poll(0.5)
            if not batch:
                empty_polls += 1
                continue
            empty_polls = 0
            for inlet, messages in batch.items():
                read.setdefault(inlet, []).extend(messages)
                for m in messages:
                    key = (m.topic, m.partition)
                    if key in ends and m.offset + 1 >= ends[key]:
                        del ends[key]
        log.info(
            "replayed %d record(s) of %s", sum(map(len, read.values())), ", ".join(self.topics)
        )
        return read

    def poll(self, timeout: float) -> dict[str, list[Message]]:
        """The records that arrived since the last poll, per inlet."""
        raw = self._consumer.consume(self.batch_size, timeout)
        batches: dict[str, list[Message]] = {}
        for m in raw:
            err = m.error()
            if err is not None:
                skip_consumer_error(err, log, "replay consumer")
                continue
            headers = m.headers()
            topic = m.topic()
            batches.setdefault(self.topics[topic], []).append(
                Message(
                    m.value(),  # None: a tombstone
                    m.key(),
                    tuple(headers) if headers else (),
                    topic,
                    m.partition(),
                    m.offset(),
                    m.timestamp()[1],
                )
            )
        return batches

    def close(self) -> None:
        """Close the consumer (nothing to commit)."""
        self._consumer.close()
