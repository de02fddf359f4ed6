"""The ``avro`` codec: schemaless Avro binary, resolved from the writer's to the reader's schema."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from io import BytesIO
from types import ModuleType
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from pydantic import BaseModel

from streamlets.codecs.base import error_reason
from streamlets.codecs.naive import naive_check
from streamlets.errors import CodecError, DecodeError, EncodeError, RecordValidationError
from streamlets.schema import Schema

__all__ = ["AvroCodec"]

# fastavro's ``schemaless_writer``/``schemaless_reader`` set up, per call, what is the same
# for every record of a port: a dict of the schema's named types (copied from the parsed
# schema), an options dict, and a second copy of the written bytes. That is a fifth of a
# small record's encode and a quarter of its decode (benchmarks/codecs.py, "entry point"
# rows). Both are thin wrappers around the ``cpdef`` functions below, whose signatures have
# not changed since fastavro 1.9; the codec calls them with what it set up once, and falls
# back to the public functions when a fastavro without them is installed.
# tests/streamlets/test_codecs.py checks that both ways give the same bytes and records.
_compiled_read: ModuleType | None
_compiled_write: ModuleType | None
try:
    from fastavro import _read as _compiled_read
    from fastavro import _write as _compiled_write
except ImportError:  # pragma: no cover - a fastavro build without its C extensions
    _compiled_read = _compiled_write = None
_fastavro_read: Callable[..., Any] = (
    getattr(_compiled_read, "_read_data", None) or schemaless_reader
)
_fastavro_write: Callable[..., Any] | None = getattr(_compiled_write, "write_data", None)
#: Whether this fastavro has both (a build without its C extensions may not).
_DIRECT = _fastavro_write is not None and _fastavro_read is not schemaless_reader

_WRITE_OPTIONS = {"strict": False, "strict_allow_default": False, "disable_tuple_notation": False}


def _read_options(named_type: bool) -> dict[str, Any]:
    """The options ``schemaless_reader`` gives ``_read_data`` for these arguments."""
    return {
        "return_record_name": False,
        "return_record_name_override": False,
        "handle_unicode_errors": "strict",
        "return_named_type": named_type,
        "return_named_type_override": False,
    }


def _named_types(parsed: Any) -> dict[str, Any]:
    """The named types of a parsed schema, as fastavro's functions look them up."""
    named: dict[str, Any] = {}
    parse_schema(parsed, named)
    return named


class AvroCodec:
    """Schemaless Avro binary with fastavro; resolves writer -> reader schema when they differ.

    Thread-safe: no buffer is shared between calls. fastavro does not check every value
    against the schema when writing (a float written to a ``long`` is truncated); ports
    validate records with :meth:`~streamlets.schema.Schema.validate` before they get here.
    """

    name = "avro"
    __slots__ = (
        "_from",
        "_naive",
        "_read",
        "_read_named",
        "_read_options",
        "_read_schema",
        "_to",
        "_write_named",
        "_write_schema",
        "reader",
        "writer",
    )

    def __init__(self, writer: Schema, reader: Schema | None = None) -> None:
        self.writer = writer
        self.reader = writer if reader is None else reader
        self._write_schema = writer.parsed
        same = self.reader is writer or self.reader.avro == writer.avro
        # fastavro compares writer and reader schemas on every call; pass None when equal.
        self._read_schema = None if same else self.reader.parsed
        self._to = writer._to
        self._from = self.reader._from
        read: Callable[..., Any] = schemaless_reader
        if self.reader.named_unions:
            read = partial(schemaless_reader, return_named_type=True)
        self._read = read
        # For the direct entry points (see _fastavro_read above); None: use the public ones.
        self._write_named: dict[str, Any] | None = None
        self._read_named: dict[str, Any] | None = None
        self._read_options = _read_options(self.reader.named_unions)
        if _DIRECT:
            self._write_named = _named_types(self._write_schema)
            self._read_named = {"writer": self._write_named, "reader": {}}
            if self._read_schema is not None:
                self._read_named["reader"] = _named_types(self._read_schema)
        self._naive = naive_check(
            writer.avro, writer.model.__name__ if writer.model else writer.name
        )

    def encode(self, record: Any) -> bytes:
        """Avro binary of ``record`` (a model instance, a dict of its fields, or a datum)."""
        if self._naive is not None:  # the first records only (streamlets/codecs/naive.py)
            self._naive = self._naive.check(record)
        to = self._to
        named = self._write_named
        try:
            if named is not None and _fastavro_write is not None:
                out = bytearray()
                _fastavro_write(
                    out,
                    record if to is None else to(record),
                    self._write_schema,
                    named,
                    "",
                    _WRITE_OPTIONS,
                )
                return bytes(out)
            fo = BytesIO()
            schemaless_writer(fo, self._write_schema, record if to is None else to(record))
        except Exception as exc:
            return self._encode_other(record, exc)
        return fo.getvalue()

    def _encode_other(self, record: Any, exc: Exception) -> bytes:
        if self.writer.model is None and isinstance(record, BaseModel):
            # A model instance on an Avro-dict port: write the dict of its fields.
            return self.encode(record.model_dump(by_alias=True))
        raise EncodeError(
            f"cannot encode {type(record).__name__} as {self.writer.describe()}: "
            f"{error_reason(exc)}"
        ) from exc

    def decode(self, data: bytes) -> Any:
        """The record in Avro binary ``data`` (resolved to the reader schema, validated)."""
        fo = BytesIO(data)
        named = self._read_named
        try:
            if named is not None:
                datum = _fastavro_read(
                    fo, self._write_schema, named, self._read_schema, self._read_options
                )
            else:
                datum = self._read(fo, self._write_schema, self._read_schema)
        except SchemaResolutionError as exc:
            # Read as the writer wrote it, but it has no form in the reader's schema.
            raise self._decode_error(RecordValidationError, exc) from exc
        except Exception as exc:
            raise self._decode_error(DecodeError, exc) from exc
        if fo.tell() != len(data):
            left = len(data) - fo.tell()
            raise self._decode_error(DecodeError, None, f"{left} bytes left over after the record")
        frm = self._from
        if frm is None:
            return datum
        try:
            return frm(datum)
        except Exception as exc:
            raise self._decode_error(RecordValidationError, exc) from exc

    def _decode_error(
        self, kind: type[CodecError], exc: Exception | None, reason: str = ""
    ) -> CodecError:
        target = self.reader.describe()
        if self._read_schema is not None:
            target += f" (written as {self.writer.describe()})"
        if isinstance(exc, EOFError):
            reason = "the data ends too early (truncated, or not written with this schema)"
        elif exc is not None:
            reason = error_reason(exc)
        return kind(f"cannot decode Avro bytes as {target}: {reason}")

    def __repr__(self) -> str:
        return f"<AvroCodec {self.writer.name} -> {self.reader.name}>"
