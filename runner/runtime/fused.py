"""Fused hops of the in-process runner: records cross a topic as objects, not as Avro.

``flow run-local --fuse`` (``run_blueprint(..., fuse=True)``) passes the records of a hop
whose writer and reader are the same pydantic model, and which one streamlet reads, from
the producer to the consumer as they are, as Flink chains operators with object reuse on:
no Avro encode, no decode, no validation of what was just validated. A fused message's
value is a :class:`FusedValue` in place of bytes: the record and the codec that would
have encoded it, so a dead letter of it still gets the record's Avro bytes
(:func:`materialized`). Nothing but the executor's codecs and dead letters looks into
the value of an in-process message; a fused hop never leaves the process.

What a fused hop does not prove (why it is off by default): that the record survives Avro
(a value pydantic allows and Avro cannot hold, such as an int beyond 64 bits, fails on
Kafka and not here); that it fits the transport's size limit; and it hands the consumer
the producer's very object, so a producer that changes a record after emitting it changes
what the consumer sees.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from blueprint import TopicSpec, VerifiedBlueprint
from runner.runtime.messages import Message
from streamlets.codecs import Codec
from streamlets.errors import EncodeError, SchemaError
from streamlets.schema import Schema

__all__ = ["FusedCodec", "FusedValue", "fusable_topics", "fusing", "materialized"]


class FusedValue(tuple[Any, Codec]):
    """The value of a fused hop's message in place of its bytes: ``(record, codec)``, the
    record itself and the codec that would have encoded it (see :func:`materialized`).

    A tuple (one allocation, no ``__dict__``): it is made for every record of the hop.
    """

    __slots__ = ()

    @property
    def record(self) -> Any:
        """The record."""
        return self[0]

    @property
    def codec(self) -> Codec:
        """The codec of the record's schema (for its bytes, when they are needed)."""
        return self[1]


_new = tuple.__new__


class FusedCodec:
    """A codec that hands records on as they are (see the module docstring).

    ``encode`` turns a dict of the model's fields into the model (as the Avro path would)
    and wraps the record in a :class:`FusedValue`; ``decode`` unwraps it. Bytes that are
    not fused (a record from elsewhere) go through ``inner``.
    """

    name = "fused"

    def __init__(self, inner: Codec, schema: Schema) -> None:
        if schema.model is None:
            raise ValueError("only hops of pydantic models are fused")
        self.inner = inner
        self.schema = schema
        self.model = schema.model

    def encode(self, record: Any) -> bytes:
        """``record`` (an instance of the model, or a dict of its fields) in a FusedValue."""
        if record.__class__ is not self.model:
            try:
                record = self.schema.validate(record)
            except SchemaError as exc:
                raise EncodeError(str(exc)) from exc
        return _new(FusedValue, (record, self.inner))  # type: ignore[return-value]

    def decode(self, data: bytes) -> Any:
        """The record a FusedValue carries; other bytes are decoded by ``inner``."""
        value: Any = data
        if value.__class__ is FusedValue:
            return value[0]
        return self.inner.decode(data)


def fusing(factory: Callable[..., Codec]) -> Callable[..., Codec]:
    """A codec factory like ``factory`` whose codecs are fused (for the writer's schema,
    which is the reader's on a fused hop)."""

    def make(name: str, writer: Schema, reader: Schema | None = None) -> Codec:
        return FusedCodec(factory(name, writer, reader), writer)

    return make


def materialized(message: Message) -> Message:
    """``message`` with real bytes: a fused record encoded by its codec (for a dead letter);
    other messages as they are."""
    value: Any = message.value
    if value is None or value.__class__ is not FusedValue:
        return message
    record, codec = value
    try:
        data = codec.encode(record)
    except Exception:  # it cannot be written as Avro: keep what it is, as text
        data = repr(record).encode()
    return replace(message, value=data)


def fusable_topics(
    blueprint: VerifiedBlueprint, codec_of: Callable[[TopicSpec], str], skip: set[str]
) -> set[str]:
    """The keys of the topics a fused run hands records on through as objects: read by one
    streamlet's inlet (not a table's, not a replay inlet), written by producers whose
    outlets have the reader's pydantic model, through the ``avro`` codec; none in ``skip``
    (topics records are injected into or collected from)."""
    found: set[str] = set()
    streamlets: Mapping[str, Any] = blueprint.streamlets
    for key, topic in blueprint.topics.items():
        if key in skip or codec_of(topic) != "avro" or len(topic.consumers) != 1:
            continue
        if not topic.producers:
            continue
        ref = topic.consumers[0]
        consumer = streamlets[ref.streamlet]
        if ref.port in consumer.cls.tables() or ref.port in consumer.cls.replay_inlets:
            continue
        model = consumer.schema(ref.port).model
        if model is None:
            continue
        if all(streamlets[p.streamlet].schema(p.port).model is model for p in topic.producers):
            found.add(key)
    return found
