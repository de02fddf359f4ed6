"""Topics: create the ones a blueprint needs with its settings; report ones that do not fit."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from blueprint import TopicSpec, VerifiedBlueprint
from runner.kafka.logs import client_log
from runner.kafka.naming import dead_letter_topic, kafka_topic
from streamlets.errors import StreamletsError

__all__ = ["BrokerUnreachable", "TopicError", "TopicPlan", "ensure_topics", "plan_topics"]

log = logging.getLogger("streamlets.runner.kafka")

#: Partitions of a topic whose blueprint entry does not say (and of dead-letter topics).
DEFAULT_PARTITIONS = 1


class TopicError(StreamletsError):
    """A topic cannot be created, or exists with settings the blueprint cannot use."""


class BrokerUnreachable(TopicError):
    """The broker did not answer (worth retrying later, unlike a bad topic)."""


@dataclass(frozen=True, slots=True)
class TopicPlan:
    """One Kafka topic to have: name, partitions, replication factor, topic config."""

    name: str
    partitions: int | None
    replication_factor: int | None
    config: Mapping[str, str] = field(default_factory=dict)
    what: str = ""  # where it comes from, for messages: "topic 'readings'"


def _plan(topic: TopicSpec) -> TopicPlan:
    return TopicPlan(
        kafka_topic(topic),
        topic.partitions,
        topic.replication_factor,
        {str(k): str(v) for k, v in topic.config.items()},
        f"blueprint topic '{topic.key}'",
    )


def plan_topics(
    blueprint: VerifiedBlueprint,
    streamlets: Iterable[str] | None = None,
    *,
    dead_letter_template: str | None = None,
) -> list[TopicPlan]:
    """The topics ``streamlets`` (default: all) read and write, plus their dead-letter topics."""
    names = list(blueprint.streamlets) if streamlets is None else list(streamlets)
    wanted: dict[str, TopicPlan] = {}
    for topic in blueprint.topics.values():
        refs = {r.streamlet for r in (*topic.producers, *topic.consumers)}
        if streamlets is None or refs & set(names):
            plan = _plan(topic)
            wanted.setdefault(plan.name, plan)
    for name in names:
        spec = blueprint.streamlets[name]
        if spec.on_error == "dead-letter":
            dlq = dead_letter_topic(blueprint, name, dead_letter_template)
            wanted.setdefault(dlq, TopicPlan(dlq, None, None, {}, f"dead letters of '{name}'"))
    return list(wanted.values())


def _error_code(exc: BaseException) -> int | None:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        code: int = exc.args[0].code()
        return code
    return None


def ensure_topics(
    admin_config: Mapping[str, Any], plans: Iterable[TopicPlan], *, timeout: float = 30.0
) -> list[str]:
    """Create the missing topics; returns the names created.

    Raises :class:`TopicError` when a topic cannot be created, or exists with fewer
    partitions than the blueprint asks for (using it would silently change the parallelism).
    """
    plans = list(plans)
    if not plans:
        return []
    config: dict[str, Any] = {"logger": client_log}
    config.update(admin_config)
    admin = AdminClient(config)
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerUnreachable(
            f"cannot reach the Kafka broker at {admin_config.get('bootstrap.servers')}: {exc}"
        ) from None
    existing = {name: len(t.partitions) for name, t in metadata.topics.items() if not t.error}
    missing = [p for p in plans if p.name not in existing]
    created: list[str] = []
    if missing:
        new = [
            NewTopic(
                p.name,
                p.partitions or DEFAULT_PARTITIONS,
                p.replication_factor or -1,
                config=dict(p.config),
            )
            for p in missing
        ]
        futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
        for plan in missing:
            try:
                futures[plan.name].result()
                created.append(plan.name)
                log.info("created topic %s (%s)", plan.name, plan.what)
            except KafkaException as exc:
                if _error_code(exc) == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue  # another replica was quicker
                raise TopicError(
                    f"cannot create Kafka topic '{plan.name}' ({plan.what}): {exc}"
                ) from None
        if len(created) < len(missing):
            metadata = admin.list_topics(timeout=timeout)
            existing = {n: len(t.partitions) for n, t in metadata.topics.items() if not t.error}
    for plan in plans:
        have = existing.get(plan.name)
        if plan.name in created or have is None or plan.partitions is None:
            continue
        if have < plan.partitions:
            raise TopicError(
                f"Kafka topic '{plan.name}' ({plan.what}) exists with {have} partition(s) but the "
                f"blueprint asks for {plan.partitions}; add partitions to the topic "
                f"(kafka-topics --alter --partitions {plan.partitions}) or lower 'partitions:' "
                "in the blueprint"
            )
        if have > plan.partitions:
            log.info(
                "topic %s has %d partitions, more than the %d the blueprint asks for",
                plan.name,
                have,
                plan.partitions,
            )
    return created
