"""The ``json`` codec: UTF-8 JSON in its natural form, validated against the reader's schema."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import enum
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from streamlets.codecs.base import error_reason
from streamlets.codecs.naive import naive_check
from streamlets.errors import (
    CodecError,
    DecodeError,
    EncodeError,
    RecordValidationError,
    SchemaError,
)
from streamlets.schema import Schema
from streamlets.schema.avro import named_types

__all__ = ["JsonCodec"]

Conv = Callable[[Any], Any]


class JsonCodec:
    """UTF-8 JSON in its natural form; decoding validates against the reader schema.

    See the module docstring for the JSON form of each Avro type (bytes are base64 for
    Avro-dict schemas; models follow their own pydantic JSON settings).
    """

    name = "json"
    __slots__ = ("_decode", "_dump", "_json_in", "_naive", "reader", "writer")

    def __init__(self, writer: Schema, reader: Schema | None = None) -> None:
        self.writer = writer
        self.reader = writer if reader is None else reader
        self._dump: Callable[..., bytes] | None = None
        if writer.model is not None:
            self._dump = writer.model.__pydantic_serializer__.to_json
        self._json_in: Conv | None = None
        if self.reader.model is None:
            self._json_in = _JsonReader(self.reader.parsed).conv(self.reader.parsed)
        # A model's naive datetime is dumped naive (pydantic's JSON); a dict's as UTC.
        self._naive = None if writer.model is not None else naive_check(writer.avro, writer.name)

    def encode(self, record: Any) -> bytes:
        """The JSON bytes of ``record``; a model is dumped by alias, a dict checked first."""
        if self._naive is not None:  # the first records only (streamlets/codecs/naive.py)
            self._naive = self._naive.check(record)
        writer = self.writer
        try:
            model = writer.model
            if model is not None:
                assert self._dump is not None
                if record.__class__ is not model:
                    record = writer.validate(record)
                return self._dump(record, by_alias=True)
            record = writer.validate(record)
            text = json.dumps(record, default=_json_default, ensure_ascii=False, allow_nan=False)
            return text.encode()
        except SchemaError as exc:
            raise EncodeError(f"cannot encode as JSON: {exc}") from exc
        except Exception as exc:
            raise EncodeError(
                f"cannot encode {type(record).__name__} as JSON for {writer.describe()}: "
                f"{error_reason(exc)}"
            ) from exc

    def decode(self, data: bytes) -> Any:
        """The record in JSON ``data``, validated against the reader schema."""
        reader = self.reader
        model = reader.model
        if model is not None:
            try:
                return model.model_validate_json(data)
            except Exception as exc:
                # pydantic parses and validates in one call; its error says which failed.
                kind = DecodeError if _is_not_json(exc) else RecordValidationError
                raise self._decode_error(kind, exc) from exc
        try:
            value = json.loads(data)
        except Exception as exc:
            raise self._decode_error(DecodeError, exc) from exc
        try:
            if self._json_in is not None:
                value = self._json_in(value)
            return reader.validate(value)
        except Exception as exc:
            raise self._decode_error(RecordValidationError, exc) from exc

    def _decode_error(self, kind: type[CodecError], exc: Exception) -> CodecError:
        if isinstance(exc, SchemaError):
            return kind(f"cannot decode JSON: {exc}")
        if isinstance(exc, ValueError) and not isinstance(exc, ValidationError):
            reason = f"invalid JSON or value: {exc}"
        else:
            reason = error_reason(exc)
        return kind(f"cannot decode JSON as {self.reader.describe()}: {reason}")

    def __repr__(self) -> str:
        return f"<JsonCodec {self.writer.name} -> {self.reader.name}>"


#: pydantic's error types for input that is not JSON (as opposed to JSON that does not fit).
_NOT_JSON = frozenset({"json_invalid", "json_type"})


def _is_not_json(exc: Exception) -> bool:
    """Whether ``model_validate_json`` failed on the JSON itself rather than on the record.

    Anything else it raises (a ValidationError about fields, or what a model's own
    validator raised) is about the record that the JSON holds.
    """
    return isinstance(exc, ValidationError) and any(
        e["type"] in _NOT_JSON for e in exc.errors(include_url=False)
    )


def _json_default(o: Any) -> Any:
    if isinstance(o, bytes | bytearray):
        return base64.b64encode(o).decode("ascii")
    if isinstance(o, dt.datetime):
        return (o if o.tzinfo is not None else o.replace(tzinfo=dt.UTC)).isoformat()
    if isinstance(o, dt.date | dt.time):
        return o.isoformat()
    if isinstance(o, uuid.UUID | decimal.Decimal):
        return str(o)
    if isinstance(o, enum.Enum):
        return o.value
    if isinstance(o, set | frozenset | tuple):
        return list(o)
    if isinstance(o, BaseModel):
        return o.model_dump(mode="json", by_alias=True)
    raise TypeError(f"{type(o).__name__} has no JSON form")


# ----------------------------------------------------- JSON -> fastavro values


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_NAIVE = dt.datetime(1970, 1, 1)
_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


def _b64(v: Any) -> bytes:
    if not isinstance(v, str):
        raise TypeError(f"expected a base64 string, got {v!r}")
    try:
        return base64.b64decode(v, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"{v!r} is not base64") from exc


def _timestamp(unit: int, local: bool) -> Conv:
    epoch = _EPOCH_NAIVE if local else _EPOCH

    def conv(v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            return epoch + dt.timedelta(microseconds=v * unit)
        if isinstance(v, str):
            parsed = dt.datetime.fromisoformat(v)
            if local:
                return parsed.replace(tzinfo=None)
            if parsed.tzinfo is None:
                return parsed.replace(tzinfo=dt.UTC)
            return parsed.astimezone(dt.UTC)
        return v

    return conv


def _date(v: Any) -> Any:
    if isinstance(v, int) and not isinstance(v, bool):
        return _EPOCH.date() + dt.timedelta(days=v)
    return dt.date.fromisoformat(v) if isinstance(v, str) else v


def _time(unit: int) -> Conv:
    def conv(v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            return (_EPOCH_NAIVE + dt.timedelta(microseconds=v * unit)).time()
        return dt.time.fromisoformat(v) if isinstance(v, str) else v

    return conv


def _uuid(v: Any) -> Any:
    return uuid.UUID(v) if isinstance(v, str) else v


def _decimal(v: Any) -> Any:
    if isinstance(v, str | int | float) and not isinstance(v, bool):
        try:
            return decimal.Decimal(str(v))
        except decimal.InvalidOperation as exc:
            raise ValueError(f"{v!r} is not a decimal") from exc
    return v


def _default(schema: Any, raw: Any, named: Mapping[str, Any]) -> Any:
    """A Python value from an Avro default (the spec's JSON encoding of defaults)."""
    if isinstance(schema, list):
        return _default(schema[0], raw, named) if schema else raw
    if isinstance(schema, str):
        if schema in named:
            return _default(named[schema], raw, named)
        return raw.encode("latin-1") if schema == "bytes" and isinstance(raw, str) else raw
    kind = schema.get("type")
    logical = schema.get("logicalType")
    if logical == "decimal" and isinstance(raw, str):
        unscaled = int.from_bytes(raw.encode("latin-1"), "big", signed=True)
        return decimal.Decimal(unscaled).scaleb(-int(schema.get("scale", 0)))
    if logical in _LOGICAL:
        return _LOGICAL[logical](raw)
    if kind in ("bytes", "fixed") and isinstance(raw, str):
        return raw.encode("latin-1")
    if kind in ("record", "error") and isinstance(raw, dict):
        return {
            f["name"]: _default(f["type"], raw.get(f["name"], f.get("default")), named)
            for f in schema["fields"]
        }
    if kind == "array" and isinstance(raw, list):
        return [_default(schema["items"], x, named) for x in raw]
    if kind == "map" and isinstance(raw, dict):
        return {k: _default(schema["values"], x, named) for k, x in raw.items()}
    if isinstance(kind, list | dict) or (isinstance(kind, str) and kind in named):
        return _default(kind, raw, named)
    return raw


_LOGICAL: dict[str, Conv] = {
    "timestamp-millis": _timestamp(1000, False),
    "timestamp-micros": _timestamp(1, False),
    "local-timestamp-millis": _timestamp(1000, True),
    "local-timestamp-micros": _timestamp(1, True),
    "date": _date,
    "time-millis": _time(1000),
    "time-micros": _time(1),
    "uuid": _uuid,
    "decimal": _decimal,
}


class _JsonReader:
    """Compiles, from a parsed Avro schema, the conversion of natural JSON to fastavro values."""

    def __init__(self, parsed: Any) -> None:
        self.named: dict[str, Any] = named_types(parsed)
        self.convs: dict[str, Conv | None] = {}

    def conv(self, schema: Any) -> Conv | None:
        """The converter for ``schema``, or None when JSON values are already right."""
        if isinstance(schema, str):
            if schema == "bytes":
                return _b64
            if schema in _PRIMITIVES or schema not in self.named:
                return None
            if schema not in self.convs:
                # Recursive types refer to themselves: bind late.
                self.convs[schema] = None
                self.convs[schema] = self.conv(self.named[schema])
            convs = self.convs
            return lambda v: _apply(convs[schema], v)
        if isinstance(schema, list):
            return self._union(schema)
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if logical in _LOGICAL:
            return _LOGICAL[logical]
        if kind in ("bytes", "fixed"):
            return _b64
        if kind in ("record", "error"):
            return self._record(schema)
        if kind == "array":
            item = self.conv(schema["items"])
            return None if item is None else lambda v: [item(x) for x in v]
        if kind == "map":
            value = self.conv(schema["values"])
            return None if value is None else lambda v: {k: value(x) for k, x in v.items()}
        if isinstance(kind, str | list | dict) and kind not in ("enum",):
            return self.conv(kind)
        return None

    def _record(self, schema: dict[str, Any]) -> Conv:
        fields = [
            (f["name"], self.conv(f["type"]), f["type"], f.get("default", _NO_DEFAULT))
            for f in schema["fields"]
        ]
        named = self.named

        def conv(v: Any) -> Any:
            if not isinstance(v, dict):
                return v
            out = {}
            for name, fconv, ftype, default in fields:
                if name in v:
                    value = v[name]
                    out[name] = value if fconv is None or value is None else fconv(value)
                elif default is not _NO_DEFAULT:
                    out[name] = _default(ftype, default, named)
            return out

        return conv

    def _union(self, branches: list[Any]) -> Conv:
        options = [(b, self.conv(b), self._accepts(b)) for b in branches if b != "null"]

        def conv(v: Any) -> Any:
            if v is None:
                return None
            for _branch, bconv, accepts in options:
                if accepts(v):
                    try:
                        return v if bconv is None else bconv(v)
                    except (TypeError, ValueError):
                        continue
            return v

        return conv

    def _accepts(self, schema: Any) -> Callable[[Any], bool]:
        """Whether a JSON value may belong to this union branch (JSON carries no branch)."""
        if isinstance(schema, str) and schema in self.named:
            schema = self.named[schema]
        if isinstance(schema, str):
            return _JSON_ACCEPTS.get(schema, lambda v: True)
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if logical == "uuid":
            return lambda v: isinstance(v, str)
        if logical == "decimal":
            return lambda v: isinstance(v, str | int | float) and not isinstance(v, bool)
        if logical is not None:
            return lambda v: isinstance(v, str | int) and not isinstance(v, bool)
        if kind == "enum":
            symbols = frozenset(schema["symbols"])
            return lambda v: isinstance(v, str) and v in symbols
        if kind in ("record", "error"):
            required = [f["name"] for f in schema["fields"] if "default" not in f]
            return lambda v: isinstance(v, dict) and all(name in v for name in required)
        if kind == "array":
            return lambda v: isinstance(v, list)
        if kind == "map":
            return lambda v: isinstance(v, dict)
        if kind == "fixed":
            return lambda v: isinstance(v, str)
        return self._accepts(kind)


_NO_DEFAULT: Any = object()

_JSON_ACCEPTS: dict[str, Callable[[Any], bool]] = {
    "boolean": lambda v: isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "long": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "double": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "bytes": lambda v: isinstance(v, str),
}


def _apply(conv: Conv | None, v: Any) -> Any:
    return v if conv is None else conv(v)
