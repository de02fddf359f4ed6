"""Topic codecs: how records cross a topic as bytes.

A topic's codec is ``avro`` (the default), ``json``, or ``avro-confluent`` (the Confluent
Schema Registry wire format, module ``confluent``: it needs a registry, which the runner
gives). :func:`codec_for` builds one for a writer schema (what producers write) and, when
decoding, a reader schema (what the consumer's inlet expects); the Avro codec resolves
writer -> reader by Avro's schema resolution rules, the JSON codec validates against the
reader.

``avro``
    Avro binary, schemaless (no header, no fingerprint: the runner carries the writer's
    schema fingerprint in a message header). Records go through
    :meth:`~streamlets.schema.Schema.to_datum` / :meth:`~streamlets.schema.Schema.from_datum`,
    converters compiled once per schema, so a record of an Avro-dict schema costs one
    fastavro call each way.

``json``
    UTF-8 JSON in its natural form, the same JSON pydantic writes: records are objects
    keyed by Avro field name, unions are the bare value, enums their symbol, datetimes,
    dates and times ISO 8601 strings, UUIDs and Decimals strings. A pydantic model is
    written with ``model_dump_json(by_alias=True)`` and read with ``model_validate_json``,
    so its own JSON settings apply. For Avro-dict schemas, ``bytes`` (and ``fixed``) are
    **base64** strings; a model with ``bytes`` fields that shares a topic with Avro-dict
    ports should set ``ser_json_bytes="base64"`` and ``val_json_bytes="base64"`` in its
    ``model_config`` (pydantic's default is UTF-8 text, which cannot hold arbitrary bytes).
    When decoding for an Avro-dict schema, a missing field takes the reader's default,
    unknown fields are dropped, and timestamps may also be given as epoch integers in the
    unit of their logical type.

Every failure raises a :class:`~streamlets.errors.CodecError` naming the schema (and,
where known, the field), with the underlying exception chained, and of the type that says
what failed: :class:`~streamlets.errors.DecodeError` for bytes that are not a record of
the writer's schema (not JSON, not Avro of that schema, truncated),
:class:`~streamlets.errors.RecordValidationError` for a record that decoded but does not
fit the reader's model or schema (for Avro also one that Avro schema resolution cannot
turn into the reader's schema, such as an enum symbol the reader does not know), and
:class:`~streamlets.errors.EncodeError` for a record that cannot be encoded.

Next to the codecs is the rest of the wire format: :data:`SCHEMA_HEADER` and
:func:`schema_fingerprint` (``wire``), and the check that lets an unchanged Avro record go
out as its input bytes (``passthrough``).
"""

from __future__ import annotations

from streamlets.codecs.avro import AvroCodec
from streamlets.codecs.base import Codec
from streamlets.codecs.by_name import CODEC_NAMES, REGISTRY_CODEC_NAMES, codec_for
from streamlets.codecs.json import JsonCodec
from streamlets.codecs.wire import SCHEMA_HEADER, schema_fingerprint
from streamlets.schema.avro import named_types

__all__ = [
    "CODEC_NAMES",
    "REGISTRY_CODEC_NAMES",
    "SCHEMA_HEADER",
    "AvroCodec",
    "Codec",
    "JsonCodec",
    "codec_for",
    "named_types",
    "schema_fingerprint",
]
