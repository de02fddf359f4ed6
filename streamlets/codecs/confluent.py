"""The ``avro-confluent`` codec: Avro in the Confluent Schema Registry wire format.

Each record is a magic byte ``0``, the writer schema's registry id as a 4-byte big-endian
integer, then the schemaless Avro binary body, as Confluent's serializers (Java, Kafka
Connect, ksqlDB, Flink SQL, confluent-kafka's ``AvroSerializer``) write it. The writer's
schema is registered (or looked up) under the topic's subject, ``<topic>-value``, on the
first record; a reader resolves each record's writer schema by its id and reads it with
its own schema as reader (Avro schema resolution, as the ``avro`` codec does).

The registry is reached through a :class:`SchemaRegistry`, which the runner provides (on
confluent-kafka's registry client: this package does no I/O); ids and schemas are cached,
so the registry is asked once per schema.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from streamlets.codecs.avro import AvroCodec
from streamlets.errors import CodecError, DecodeError, SchemaError
from streamlets.schema import Schema

__all__ = ["MAGIC", "ConfluentAvroCodec", "SchemaRegistry", "frame", "unframe"]

#: The first byte of every record in the Confluent wire format.
MAGIC = 0


class SchemaRegistry(Protocol):
    """Where the ``avro-confluent`` codec finds schema ids and schemas."""

    def writer_id(self, subject: str, schema: Schema) -> int:
        """The id of ``schema`` under ``subject`` (registering it, if the registry may)."""
        ...

    def schema_by_id(self, schema_id: int) -> Any:
        """The Avro schema (parsed JSON) registered with ``schema_id``."""
        ...


def frame(schema_id: int, body: bytes) -> bytes:
    """``body`` in the wire format: magic byte, 4-byte big-endian schema id, body."""
    return bytes((MAGIC,)) + schema_id.to_bytes(4, "big") + body


def unframe(data: bytes) -> tuple[int, bytes]:
    """The schema id and body of a record in the wire format; :class:`DecodeError` when
    ``data`` is not in it."""
    if len(data) < 5 or data[0] != MAGIC:
        first = f"magic byte {data[0]}" if data else "no bytes"
        raise DecodeError(
            f"not a record in the Confluent Schema Registry wire format ({first}, "
            f"{len(data)} bytes; expected magic byte 0 and a 4-byte schema id): the producer "
            "does not write codec avro-confluent"
        )
    return int.from_bytes(data[1:5], "big"), data[5:]


class ConfluentAvroCodec:
    """Avro records in the Confluent wire format, the writer schema under ``subject``."""

    name = "avro-confluent"

    def __init__(
        self, writer: Schema, reader: Schema | None, registry: SchemaRegistry, subject: str
    ) -> None:
        self.writer = writer
        self.reader = writer if reader is None else reader
        self.registry = registry
        self.subject = subject
        self._body = AvroCodec(writer, writer)
        self._id: int | None = None
        self._readers: dict[int, AvroCodec] = {}

    def prepare(self) -> None:
        """Register (or look up) the writer schema now: a runner calls it for the codecs
        it will encode with, so that a registry out of reach stops the start-up instead
        of failing records."""
        if self._id is None:
            self._id = self.registry.writer_id(self.subject, self.writer)

    def encode(self, record: Any) -> bytes:
        """The wire format of ``record``: magic byte, the writer schema's id, Avro body."""
        body = self._body.encode(record)
        schema_id = self._id
        if schema_id is None:
            schema_id = self._id = self.registry.writer_id(self.subject, self.writer)
        return frame(schema_id, body)

    def decode(self, data: bytes) -> Any:
        """The record in ``data``, read with its writer schema (by id) as the reader's."""
        schema_id, body = unframe(data)
        codec = self._readers.get(schema_id)
        if codec is None:
            codec = self._readers[schema_id] = self._reader_for(schema_id)
        return codec.decode(body)

    def _reader_for(self, schema_id: int) -> AvroCodec:
        found = self.registry.schema_by_id(schema_id)
        try:
            writer = Schema.of(found if not isinstance(found, str) else json.loads(found))
        except (SchemaError, ValueError) as exc:
            raise DecodeError(f"schema id {schema_id} is not an Avro schema: {exc}") from exc
        return AvroCodec(writer, self.reader)

    def __repr__(self) -> str:
        return f"<ConfluentAvroCodec {self.writer.name} -> {self.reader.name} ({self.subject})>"


def no_registry(topic: str) -> CodecError:
    """The error for an ``avro-confluent`` topic with no registry to reach."""
    return CodecError(
        f"topic '{topic}' has codec avro-confluent but no schema registry is configured; "
        "give 'schema_registry: {url: ...}' in the config file"
    )
