"""How far the consumers of a `flow run-local --kafka` run are, as the broker sees it.

A run with bounded sources ends when every consumer group has committed every record of
every topic it reads. Counting that from the processes' own reports undercounts after a
SIGKILL (a process can die between a commit and its report), so it is read from the
broker: the groups' committed offsets against the ends of the topics.

The ends are not taken from the broker's high watermark, which some brokers report wrongly
(Tansu answers 1 for a partition holding hundreds of records). A reader of its own is
assigned every partition of the watched topics from the beginning and notes the offset
after the last record it has seen; since the sources have ended and every record a
consumer commits was produced before the commit (at-least-once: outputs are acknowledged
before their inputs are committed), the reader catches up with everything there will be.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from blueprint import VerifiedBlueprint
from runner.kafka.logs import client_log
from runner.kafka.naming import group_id, kafka_topic
from runner.kafka.settings import KafkaSettings

__all__ = ["BrokerProgress"]

#: Records the reader takes per poll, and polls per refresh at most (a refresh must return).
_BATCH = 5000
_POLLS = 20


@dataclass(frozen=True, slots=True)
class _Watched:
    """A topic the run's streamlets consume, with the groups that consume it."""

    key: str  # blueprint topic key
    name: str  # Kafka topic
    groups: tuple[tuple[str, str], ...]  # (streamlet, consumer group)


class BrokerProgress:
    """Committed offsets of every consumer group against the ends of the topics it reads.

    :meth:`refresh` reads what is new on the topics and the groups' committed offsets (it
    blocks on the broker: call it off the event loop); :meth:`lag` is then the records
    each (streamlet, topic) has not committed yet, and :attr:`moved` whether the last
    refresh saw new records.
    """

    def __init__(self, blueprint: VerifiedBlueprint, settings: KafkaSettings) -> None:
        watched = []
        for key, topic in blueprint.topics.items():
            if not topic.producers:
                continue  # outside input: a local run cannot know how much there is
            groups = tuple(
                (ref.streamlet, group_id(blueprint, ref.streamlet))
                for ref in topic.consumers
                if ref.port not in blueprint.streamlets[ref.streamlet].cls.replay_inlets
            )
            if groups:
                watched.append(_Watched(key, kafka_topic(topic), groups))
        self.watched = tuple(watched)
        self.moved = False
        self._settings = settings
        self._ends: dict[tuple[str, int], int] = {}
        self._partitions: dict[str, list[int]] = {}
        self._committed: dict[tuple[str, str], dict[int, int]] = {}
        self._reader: Any = None
        self._groups: dict[str, Any] = {}
        self._lag: dict[tuple[str, str], int] = {}

    def _consumer(self, group: str) -> Any:
        config = self._settings.for_consumer(
            **{
                "group.id": group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "logger": client_log,
            }
        )
        return Consumer(config)

    def _start(self) -> None:
        # A group of its own that never commits or joins: the partitions are assigned.
        self._reader = self._consumer(f"{self.watched[0].name}.run-local.{os.getpid()}")
        assigned = []
        for topic in self.watched:
            metadata = self._reader.list_topics(topic.name, timeout=10)
            found = metadata.topics.get(topic.name)
            partitions = sorted(found.partitions) if found is not None else []
            self._partitions[topic.name] = partitions
            assigned += [TopicPartition(topic.name, p, OFFSET_BEGINNING) for p in partitions]
            for _, group in topic.groups:
                if group not in self._groups:
                    self._groups[group] = self._consumer(group)
        self._reader.assign(assigned)

    def refresh(self) -> None:
        """Read what is new on the watched topics, then every group's committed offsets."""
        if not self.watched:
            return
        if self._reader is None:
            self._start()
        self.moved = False
        ends = self._ends
        for _ in range(_POLLS):
            batch = self._reader.consume(_BATCH, 0.1)
            seen = 0
            for m in batch:
                if m.error() is None:
                    key = (m.topic(), m.partition())
                    offset = m.offset() + 1
                    if offset > ends.get(key, 0):
                        ends[key] = offset
                    seen += 1
            if not seen:
                break
            self.moved = True
        lag: dict[tuple[str, str], int] = {}
        for topic in self.watched:
            parts = [TopicPartition(topic.name, p) for p in self._partitions[topic.name]]
            for streamlet, group in topic.groups:
                committed = self._committed_of(group, topic.name, parts)
                behind = 0
                for p in self._partitions[topic.name]:
                    end = ends.get((topic.name, p), 0)
                    behind += max(end - max(committed.get(p, 0), 0), 0)
                lag[(streamlet, topic.key)] = lag.get((streamlet, topic.key), 0) + behind
        self._lag = lag

    def _committed_of(
        self, group: str, topic: str, parts: list[TopicPartition]
    ) -> Mapping[int, int]:
        try:
            found = self._groups[group].committed(parts, timeout=5)
        except Exception:  # the broker is busy or restarting: keep the last answer
            return self._committed.get((group, topic), {})
        offsets = {
            tp.partition: tp.offset
            for tp in found
            if tp.error is None or tp.error.code() == KafkaError.NO_ERROR
        }
        self._committed[(group, topic)] = offsets
        return offsets

    def lag(self) -> dict[tuple[str, str], int]:
        """Per (consumer streamlet, topic key): records on the topic not yet committed by
        its group, as of the last refresh."""
        return dict(self._lag)

    def close(self) -> None:
        """Close the reader and the groups' consumers (none of them is a group member)."""
        for consumer in (self._reader, *self._groups.values()):
            if consumer is not None:
                with contextlib.suppress(Exception):
                    consumer.close()
        self._reader = None
        self._groups.clear()
