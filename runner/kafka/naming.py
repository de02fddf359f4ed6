"""How blueprint names become Kafka names: topics, consumer groups, client and transaction ids."""

from __future__ import annotations

from blueprint import TopicSpec, VerifiedBlueprint

__all__ = [
    "DEFAULT_DEAD_LETTER_TEMPLATE",
    "client_id",
    "dead_letter_topic",
    "group_id",
    "kafka_topic",
    "transactional_id",
]

#: The dead-letter topic of a streamlet unless configured otherwise.
DEFAULT_DEAD_LETTER_TEMPLATE = "{app}.{streamlet}.dead-letters"


def kafka_topic(topic: TopicSpec) -> str:
    """The Kafka topic of a blueprint topic: its ``name:`` when set, else its key."""
    return topic.name or topic.key


def group_id(blueprint: VerifiedBlueprint, streamlet: str) -> str:
    """The consumer group of a streamlet: ``<app>.<streamlet>`` (shared by its replicas)."""
    return f"{blueprint.name}.{streamlet}"


def client_id(blueprint: VerifiedBlueprint, streamlet: str, replica: int) -> str:
    """The Kafka client id of one replica: ``<app>.<streamlet>-<replica>``."""
    return f"{blueprint.name}.{streamlet}-{replica}"


def transactional_id(blueprint: VerifiedBlueprint, streamlet: str, replica: int) -> str:
    """The transactional id of one replica; stable across restarts so old instances are fenced."""
    return f"{blueprint.name}.{streamlet}-{replica}.tx"


def dead_letter_topic(
    blueprint: VerifiedBlueprint, streamlet: str, template: str | None = None
) -> str:
    """The dead-letter topic of a streamlet (``template`` may use ``{app}``, ``{streamlet}``)."""
    return (template or DEFAULT_DEAD_LETTER_TEMPLATE).format(
        app=blueprint.name, streamlet=streamlet
    )
