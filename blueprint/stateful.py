"""State checks: the states a streamlet declares, the co-partitioning they need and the
replicas its input can keep busy (DESIGN §8).

Pure functions over a streamlet class and the topics it reads; verify turns what they find
into problems with the blueprint's locations.

A streamlet's state is kept per input partition: the replica that owns partition ``p``
holds the values of the keys that hash to ``p``. That is right only when every topic the
streamlet reads has the same partition count (a key then hashes to the same partition
number in each, with the murmur2 partitioner every producer uses), and it bounds the
replicas that can hold state to that count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from blueprint.names import kafka_topic_problem
from streamlets.state import State

__all__ = [
    "Finding",
    "InputTopic",
    "changelog_topic",
    "copartition_finding",
    "idle_replicas_finding",
    "state_findings",
]


def changelog_topic(app: str, streamlet: str, state: str) -> str:
    """The changelog topic of ``state`` of ``streamlet``: ``<app>.<streamlet>.<state>.changelog``
    (DESIGN §8; the runners use the same name)."""
    return f"{app}.{streamlet}.{state}.changelog"


@dataclass(frozen=True, slots=True)
class Finding:
    """What is wrong and what to do about it."""

    message: str
    hint: str


@dataclass(frozen=True, slots=True)
class InputTopic:
    """A topic a streamlet reads through one of its (shared, not replayed) inlets.

    ``partitions`` is the blueprint's ``partitions:`` (``None`` when it sets none: the
    runners then create the topic with one).
    """

    inlet: str
    topic: str
    partitions: int | None

    @property
    def count(self) -> int:
        """The partitions the topic has when the runners create it."""
        return self.partitions or 1

    def describe(self) -> str:
        """``'readings' (3 partitions)``, saying when the count is the default."""
        unit = "partition" if self.count == 1 else "partitions"
        default = ", as it sets no 'partitions:'" if self.partitions is None else ""
        return f"'{self.topic}' ({self.count} {unit}{default})"


def state_findings(
    states: Mapping[str, State[Any]], app: str, streamlet: str
) -> list[tuple[str, Finding]]:
    """``(state, finding)`` for each state that cannot be kept: its schema has no Avro
    form, its default does not fit the schema, or its changelog topic would have a name
    Kafka refuses."""
    found: list[tuple[str, Finding]] = []
    for name, state in states.items():
        owner = state.owner.__name__ if state.owner is not None else "?"
        problem = state.definition_problem()
        if problem is not None:
            hint = (
                "give State a pydantic model, int, float, str, bool or bytes, a type a "
                "pydantic field takes (list[float], datetime), or an Avro schema dict"
                if "Avro form" in problem
                else "give a default that the schema accepts, or none (get() then returns None "
                "for a key without a value)"
            )
            found.append((name, Finding(f"state '{name}' of {owner}: {problem}", hint)))
            continue
        if not app:
            continue  # no valid application name: reported already
        topic = changelog_topic(app, streamlet, name)
        why = kafka_topic_problem(topic)
        if why is not None:
            found.append(
                (
                    name,
                    Finding(
                        f"state '{name}' of {owner} would be kept in the changelog topic "
                        f"{topic!r}, which is not a valid Kafka topic name: {why}",
                        "rename the state (an ASCII name) or shorten the application or "
                        "streamlet name",
                    ),
                )
            )
    return found


def copartition_finding(states: Iterable[str], inputs: list[InputTopic]) -> Finding | None:
    """Why a streamlet with ``states`` cannot keep them over ``inputs`` (topics with
    different partition counts), or ``None``."""
    counts = {topic.count for topic in inputs}
    if len(counts) <= 1:
        return None
    names = ", ".join(states)
    listed = ", ".join(topic.describe() for topic in inputs)
    most = max(counts)
    targets = " and ".join(f"'{t.topic}'" for t in inputs if t.count != most)
    return Finding(
        f"it keeps state ({names}) per input partition, but reads topics with different "
        f"partition counts: {listed}; a key's records then arrive on partitions with "
        "different numbers, and its state would be split between stores (and replicas)",
        f"give every topic it reads the same 'partitions:' (e.g. {most} for {targets}); "
        "for a topic written outside the application, re-key it into one of the same "
        "partition count first",
    )


def idle_replicas_finding(
    replicas: int, inputs: list[InputTopic], stateful: bool
) -> Finding | None:
    """Why some of ``replicas`` would get no records from ``inputs``, or ``None``.

    A consumer group gives each partition to one replica. A stateless streamlet's
    replicas share the partitions of all its topics; a stateful one's state is partitioned
    like its input, so at most as many replicas as one topic has partitions hold any.
    """
    if not inputs:
        return None
    if stateful:
        capacity = max(topic.count for topic in inputs)
        widest = next(t for t in inputs if t.count == capacity)
        feeds = f"its state is partitioned like its input, {widest.describe()}"
    else:
        capacity = sum(topic.count for topic in inputs)
        if len(inputs) == 1:
            feeds = f"its input topic {inputs[0].describe()}"
        else:
            listed = ", ".join(topic.describe() for topic in inputs)
            feeds = f"its input topics have {capacity} partitions together: {listed}"
    idle = replicas - capacity
    if idle <= 0:
        return None
    verb = "gets" if idle == 1 else "get"
    topics = " and ".join(f"'{t.topic}'" for t in inputs)
    more = (
        f"'partitions: {replicas}'"
        if stateful or len(inputs) == 1
        else f"{idle} more partition{'' if idle == 1 else 's'} between them"
    )
    return Finding(
        f"it has {replicas} replicas, but {feeds}: {idle} replica{'' if idle == 1 else 's'} "
        f"{verb} no records (a consumer group gives each partition to one replica)",
        f"lower 'replicas:' to {capacity}, or give {topics} {more}; partitions bound how "
        "far a streamlet scales",
    )
