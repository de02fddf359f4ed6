"""The PostgreSQL columns of a record schema: each Avro field's column type and how its
values are passed to the database."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streamlets.errors import ConfigError

__all__ = ["Column", "columns_of"]

_PRIMITIVES = {
    "boolean": "boolean",
    "int": "integer",
    "long": "bigint",
    "float": "real",
    "double": "double precision",
    "string": "text",
    "bytes": "bytea",
}
_LOGICAL = {
    "timestamp-millis": "timestamp with time zone",
    "timestamp-micros": "timestamp with time zone",
    "local-timestamp-millis": "timestamp without time zone",
    "local-timestamp-micros": "timestamp without time zone",
    "date": "date",
    "time-millis": "time without time zone",
    "time-micros": "time without time zone",
    "uuid": "uuid",
}

Convert = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its name (the Avro field's), SQL type, nullability and converter."""

    name: str
    sql_type: str
    nullable: bool
    convert: Convert


def _same(value: Any) -> Any:
    return value


def _aware(value: Any) -> Any:
    """Naive datetimes are UTC (as everywhere in streamlets)."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime):
        return _aware(value).isoformat()
    return str(value)


def _branch(value: Any) -> Any:
    """A union's value without the branch name a reader of named unions gets with it."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        return value[1]
    return value


def _plain(value: Any) -> Any:
    """``value`` with the union branch names taken out, at any depth."""
    value = _branch(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _jsonb(value: Any) -> Any:
    from psycopg.types.json import Jsonb  # noqa: PLC0415 - psycopg is an optional extra

    if value is None:
        return None
    return Jsonb(_plain(value), dumps=lambda v: json.dumps(v, default=_json_default))


def _enum_symbol(value: Any) -> Any:
    return getattr(value, "value", value)


def _column_type(avro: Any, named: dict[str, Any]) -> tuple[str, bool, Convert]:
    """SQL type, nullability and converter of the Avro type ``avro``."""
    if isinstance(avro, list):
        members = [m for m in avro if m != "null"]
        nullable = len(members) < len(avro)
        if len(members) == 1:
            sql_type, _, convert = _column_type(members[0], named)
            return sql_type, nullable, lambda value: convert(_branch(value))
        return "jsonb", nullable, _jsonb
    if isinstance(avro, str):
        if avro in _PRIMITIVES:
            return _PRIMITIVES[avro], False, _same
        if avro == "null":
            return "text", True, _same
        if avro in named:
            return _column_type(named[avro], named)
        raise ConfigError(f"the schema names the type {avro!r}, which it does not define")
    if not isinstance(avro, Mapping):
        raise ConfigError(f"{avro!r} is not an Avro type")
    kind = avro.get("type")
    name = avro.get("name")
    if isinstance(name, str) and kind in ("record", "enum", "fixed"):
        named[name] = avro
        if "namespace" in avro:
            named[f"{avro['namespace']}.{name}"] = avro
    logical = avro.get("logicalType")
    if logical in _LOGICAL:
        return _LOGICAL[logical], False, _aware if "timestamp" in str(logical) else _same
    if logical == "decimal":
        return f"numeric({int(avro['precision'])}, {int(avro.get('scale', 0))})", False, _same
    if kind == "enum":
        return "text", False, _enum_symbol
    if kind == "fixed":
        return "bytea", False, _same
    if kind in ("record", "array", "map"):
        return "jsonb", False, _jsonb
    return _column_type(kind, named)


def columns_of(avro: Any) -> list[Column]:
    """The columns of a record schema, one per field, in field order."""
    if not isinstance(avro, Mapping) or avro.get("type") != "record":
        raise ConfigError(
            "a database sink writes records: its schema must be a record (a pydantic model "
            "or an Avro record schema)"
        )
    named: dict[str, Any] = {}
    _column_type(avro, named)
    columns = []
    for field in avro["fields"]:
        sql_type, nullable, convert = _column_type(field["type"], named)
        columns.append(Column(field["name"], sql_type, nullable, convert))
    return columns
