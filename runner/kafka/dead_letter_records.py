"""A dead letter's original record, decoded with its topic's codec for people to read
(``flow dead-letters`` and the live view show it so)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from blueprint import TopicSpec, VerifiedBlueprint
from runner.kafka.naming import kafka_topic
from runner.runtime.messages import DeadLetter
from streamlets.codecs import SCHEMA_HEADER, codec_for, schema_fingerprint
from streamlets.schema import Schema

__all__ = ["decoded_record", "jsonable", "raw_text", "topic_of"]


def topic_of(blueprint: VerifiedBlueprint, name: str) -> TopicSpec | None:
    """The blueprint topic a dead letter came from: by key (in-process runs) or Kafka name."""
    found = blueprint.topics.get(name)
    if found is not None:
        return found
    return next((t for t in blueprint.topics.values() if kafka_topic(t) == name), None)


def decoded_record(blueprint: VerifiedBlueprint, dead: DeadLetter) -> tuple[Any, str | None]:
    """(the original record decoded, ``None``) or (``None``, why it cannot be)."""
    topic = topic_of(blueprint, dead.original.topic)
    spec = blueprint.streamlets.get(dead.streamlet)
    if topic is None or spec is None:
        return None, f"topic '{dead.original.topic}' is not in the blueprint"
    inlet = dead.inlet or next(iter(spec.cls.inlets()), None)
    if inlet is None:  # a source's own input that made no record
        return None, "the input of a source, which made no record"
    if dead.value_truncated:
        return None, "the dead letter holds the start of the value only"
    if dead.original.value is None:
        return None, "a tombstone (a record with a null value)"
    reader = spec.schema(inlet)
    writers: list[Schema] = [reader]
    writers += [blueprint.streamlets[r.streamlet].schema(r.port) for r in topic.producers]
    mark = dead.original.header(SCHEMA_HEADER)
    writer = next((w for w in writers if schema_fingerprint(w).encode() == mark), reader)
    try:
        return codec_for(topic.codec, writer, reader).decode(dead.original.value), None
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"


def jsonable(record: Any) -> Any:
    if isinstance(record, BaseModel):
        return record.model_dump(mode="json", by_alias=True)
    return json.loads(json.dumps(record, default=str))


def raw_text(value: bytes | None) -> str:
    if value is None:
        return "null"
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return "hex " + value.hex()
