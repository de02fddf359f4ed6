"""The codec names a blueprint's ``codec:`` accepts, and :func:`codec_for`, which builds one."""

from __future__ import annotations

from streamlets.codecs.avro import AvroCodec
from streamlets.codecs.base import Codec
from streamlets.codecs.json import JsonCodec
from streamlets.errors import CodecError
from streamlets.schema import Schema

__all__ = ["CODEC_NAMES", "codec_for"]

CODEC_NAMES: tuple[str, ...] = ("avro", "json")
"""The names a blueprint's ``codec:`` accepts; the first is the default."""


def codec_for(name: str, writer: Schema, reader: Schema | None = None) -> Codec:
    """The codec ``name`` for records written with ``writer`` and read as ``reader``.

    ``reader`` defaults to ``writer``. An unknown name raises
    :class:`~streamlets.errors.CodecError` listing :data:`CODEC_NAMES`.
    """
    if name == "avro":
        return AvroCodec(writer, reader)
    if name == "json":
        return JsonCodec(writer, reader)
    raise CodecError(f"unknown codec {name!r}; use one of: {', '.join(CODEC_NAMES)}")
