"""Strimzi ``KafkaTopic`` resources: one per blueprint topic, per dead-letter topic and per
changelog topic of a state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from blueprint import VerifiedBlueprint
from runner.k8s import naming
from runner.k8s.workloads import metadata
from runner.kafka.naming import dead_letter_topic
from runner.kafka.naming import kafka_topic as kafka_topic_name
from runner.runtime.state import changelog_topic

__all__ = [
    "CHANGELOG_CONFIG",
    "STRIMZI_API_VERSION",
    "KafkaTopicSpec",
    "changelogs_of",
    "kafka_topic",
    "kafka_topics",
    "topics_of",
]

#: The Strimzi API the KafkaTopics use (the only version Strimzi 1.x serves).
STRIMZI_API_VERSION = "kafka.strimzi.io/v1"
#: The settings of every changelog topic: compacted, so that it keeps the latest value of
#: each key (and a tombstone deletes one) however long the application runs.
CHANGELOG_CONFIG = (("cleanup.policy", "compact"),)


@dataclass(frozen=True, slots=True)
class KafkaTopicSpec:
    """A Kafka topic the application needs, with its settings from the blueprint."""

    name: str
    partitions: int | None = None
    replicas: int | None = None
    config: tuple[tuple[str, Any], ...] = ()
    component: str = "topic"


def topics_of(
    verified: VerifiedBlueprint, dead_letter_template: str | None = None
) -> list[KafkaTopicSpec]:
    """The blueprint's topics, then one dead-letter topic per dead-lettering streamlet.

    ``dead_letter_template`` is the ``runner.dead_letter_topic`` setting of the config
    file (``{app}`` and ``{streamlet}`` in it are replaced), as the Kafka runner uses it.
    """
    found = [
        KafkaTopicSpec(
            name=kafka_topic_name(topic),
            partitions=topic.partitions,
            replicas=topic.replication_factor,
            config=tuple(topic.config.items()),
        )
        for topic in verified.topics.values()
    ]
    names = {t.name for t in found}
    for name, spec in verified.streamlets.items():
        topic = dead_letter_topic(verified, name, dead_letter_template)
        if spec.on_error == "dead-letter" and topic not in names:
            names.add(topic)
            found.append(KafkaTopicSpec(name=topic, component="dead-letters"))
    found += [t for t in changelogs_of(verified) if t.name not in names]
    return found


def changelogs_of(verified: VerifiedBlueprint) -> list[KafkaTopicSpec]:
    """The changelog topic of each state of each stateful streamlet (DESIGN §8).

    ``<app>.<streamlet>.<state>.changelog``, compacted, with as many partitions as the
    streamlet's input topics (its state is partitioned like them: partition ``p`` of the
    changelog holds the values of partition ``p``'s keys; a source's own state has one),
    and the replication factor of the most replicated of them, when they set one.
    """
    found: list[KafkaTopicSpec] = []
    for name, spec in verified.streamlets.items():
        if not spec.stateful:
            continue
        factors = [
            topic.replication_factor
            for inlet in spec.cls.inlets()
            if (topic := verified.inlet_topic(name, inlet)) is not None
            and topic.replication_factor is not None
        ]
        for state in spec.cls.states():
            found.append(
                KafkaTopicSpec(
                    name=changelog_topic(verified.name, name, state),
                    partitions=verified.input_partitions(name),
                    replicas=max(factors, default=None),
                    config=CHANGELOG_CONFIG,
                    component="changelog",
                )
            )
    return found


def kafka_topic(
    app: str, topic: KafkaTopicSpec, cluster: str, namespace: str | None
) -> dict[str, Any]:
    """The KafkaTopic of one topic, labelled for the Strimzi cluster ``cluster``."""
    resource_name = naming.topic_resource_name(topic.name)
    labels = {"strimzi.io/cluster": cluster, **naming.app_labels(app, topic.component)}
    spec: dict[str, Any] = {}
    if resource_name != topic.name:
        spec["topicName"] = topic.name
    if topic.partitions is not None:
        spec["partitions"] = topic.partitions
    if topic.replicas is not None:
        spec["replicas"] = topic.replicas
    if topic.config:
        spec["config"] = dict(topic.config)
    return {
        "apiVersion": STRIMZI_API_VERSION,
        "kind": "KafkaTopic",
        "metadata": metadata(resource_name, namespace, labels),
        "spec": spec,
    }


def kafka_topics(
    verified: VerifiedBlueprint,
    cluster: str,
    namespace: str | None,
    dead_letter_template: str | None = None,
) -> list[dict[str, Any]]:
    """Every KafkaTopic of the application."""
    return [
        kafka_topic(verified.name, t, cluster, namespace)
        for t in topics_of(verified, dead_letter_template)
    ]
