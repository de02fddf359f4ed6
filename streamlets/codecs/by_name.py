"""The codec names a blueprint's ``codec:`` accepts, and :func:`codec_for`, which builds one."""

from __future__ import annotations

from streamlets.codecs.avro import AvroCodec
from streamlets.codecs.base import Codec
from streamlets.codecs.confluent import ConfluentAvroCodec, SchemaRegistry, no_registry
from streamlets.codecs.json import JsonCodec
from streamlets.errors import CodecError
from streamlets.schema import Schema

__all__ = ["CODEC_NAMES", "REGISTRY_CODEC_NAMES", "codec_for"]

CODEC_NAMES: tuple[str, ...] = ("avro", "json")
"""The codecs that need nothing but the schemas; the first is the default."""
REGISTRY_CODEC_NAMES: tuple[str, ...] = ("avro-confluent",)
"""The codecs that need a schema registry (a blueprint's ``codec:`` accepts these too)."""


def codec_for(
    name: str,
    writer: Schema,
    reader: Schema | None = None,
    *,
    topic: str = "",
    registry: SchemaRegistry | None = None,
) -> Codec:
    """The codec ``name`` for records written with ``writer`` and read as ``reader``.

    ``reader`` defaults to ``writer``. ``avro-confluent`` needs the ``registry`` and the
    Kafka ``topic`` (its subject is ``<topic>-value``). An unknown name raises
    :class:`~streamlets.errors.CodecError` listing :data:`CODEC_NAMES`.
    """
    if name == "avro":
        return AvroCodec(writer, reader)
    if name == "json":
        return JsonCodec(writer, reader)
    if name == "avro-confluent":
        if registry is None:
            raise no_registry(topic)
        return ConfluentAvroCodec(writer, reader, registry, f"{topic}-value")
    known = ", ".join(CODEC_NAMES + REGISTRY_CODEC_NAMES)
    raise CodecError(f"unknown codec {name!r}; use one of: {known}")
