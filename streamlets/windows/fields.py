"""The fields of a window's input records: their Avro types and how to read them.

Built-in aggregates name a field of the input (``Mean("temperature")``); what they may do
with it depends on its Avro type (a mean needs a number), and what they store and give
back has that type too. This module looks the field up in the input's schema, reads it
from a record (a pydantic model instance or a dict) and builds the Avro types derived
from it.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from streamlets.schema import Schema

__all__ = [
    "NUMBER_TYPES",
    "FieldType",
    "base_type",
    "describe_type",
    "field_getter",
    "field_names",
    "field_type",
    "is_nullable",
    "nullable",
    "without_redefinitions",
]

#: An Avro type as JSON-able data: a name, a dict or a list (a union).
FieldType = Any

#: Avro types whose values are Python numbers (``int``/``float``) a sum or mean can add.
NUMBER_TYPES = ("int", "long", "float", "double")
#: Logical types that are read as comparable Python values (datetime, date, time).
_ORDERED_LOGICAL = (
    "timestamp-millis",
    "timestamp-micros",
    "local-timestamp-millis",
    "local-timestamp-micros",
    "date",
    "time-millis",
    "time-micros",
)


def _fields(schema: Schema) -> list[Mapping[str, Any]]:
    avro = schema.avro
    if isinstance(avro, Mapping) and avro.get("type") == "record":
        return list(avro.get("fields", ()))
    return []


def field_names(schema: Schema) -> list[str]:
    """The (Avro) names of the fields of ``schema``'s record, in order."""
    return [str(f["name"]) for f in _fields(schema)]


def field_type(schema: Schema, name: str) -> FieldType | None:
    """The Avro type of field ``name`` of ``schema``'s record, or ``None`` when it has none."""
    for entry in _fields(schema):
        if entry["name"] == name:
            return entry["type"]
    return None


def is_nullable(avro: FieldType) -> bool:
    """Whether ``avro`` is a union with ``null``."""
    return isinstance(avro, list) and "null" in avro


def nullable(avro: FieldType) -> FieldType:
    """``avro`` or null (a union is extended, never nested)."""
    if isinstance(avro, list):
        return avro if "null" in avro else ["null", *avro]
    if avro == "null":
        return avro
    return ["null", avro]


def base_type(avro: FieldType) -> tuple[str, str | None]:
    """``(type, logical type)`` of a field, ignoring ``null`` in a union: ``("double",
    None)``, ``("long", "timestamp-millis")``, ``("union", None)`` for a union of several
    other types, ``("record", None)`` and so on."""
    if isinstance(avro, list):
        rest = [t for t in avro if t != "null"]
        if len(rest) != 1:
            return ("union", None)
        avro = rest[0]
    if isinstance(avro, Mapping):
        kind = str(avro.get("type"))
        logical = avro.get("logicalType")
        if kind in ("record", "enum", "fixed", "array", "map"):
            return (kind, None)
        return (kind, str(logical) if logical else None)
    return (str(avro), None)


def describe_type(avro: FieldType) -> str:
    """A field's type as a sentence fragment: ``a string``, ``a long (timestamp-millis)``."""
    kind, logical = base_type(avro)
    text = f"{kind} ({logical})" if logical else kind
    if isinstance(avro, Mapping) and kind in ("record", "enum", "fixed"):
        text = f"{kind} {avro.get('name')}"
    article = "an" if text[:1] in "aeiou" else "a"
    return f"{article} {text}" + (" or null" if is_nullable(avro) else "")


def is_number(avro: FieldType) -> bool:
    """Whether a field holds numbers a sum or mean can add (null allowed)."""
    kind, logical = base_type(avro)
    return kind in NUMBER_TYPES and logical is None


def is_ordered(avro: FieldType) -> bool:
    """Whether a field's values can be compared (min, max): numbers, strings, booleans,
    timestamps, dates and times."""
    kind, logical = base_type(avro)
    if logical is not None:
        return logical in _ORDERED_LOGICAL
    return kind in (*NUMBER_TYPES, "string", "boolean")


def field_getter(schema: Schema, name: str) -> Callable[[Any], Any]:
    """A function that reads field ``name`` from a record of ``schema``: an attribute of a
    model instance (found through its alias), an item of a dict."""
    model = schema.model
    if model is not None:
        attribute = name
        for attr, info in model.model_fields.items():
            if name in (info.serialization_alias, info.alias, attr):
                attribute = attr
                break
        get_attr = operator.attrgetter(attribute)

        def from_model(record: Any) -> Any:
            if type(record) is dict:
                return record.get(name)
            return get_attr(record)

        return from_model

    def from_dict(record: Any) -> Any:
        if type(record) is dict:  # the usual case, checked without the ABC machinery
            return record.get(name)
        if isinstance(record, Mapping):
            return record.get(name)
        return getattr(record, name, None)

    return from_dict


def without_redefinitions(avro: FieldType, defined: set[str] | None = None) -> FieldType:
    """``avro`` with every named type (record, enum, fixed) defined once: a later copy of a
    definition is replaced by the type's name, as Avro requires when types derived from one
    input field appear twice in a schema."""
    seen = set() if defined is None else defined
    return _dedup(avro, seen, "")


def _dedup(avro: FieldType, seen: set[str], namespace: str) -> FieldType:
    if isinstance(avro, list):
        return [_dedup(t, seen, namespace) for t in avro]
    if not isinstance(avro, Mapping):
        return avro
    kind = avro.get("type")
    if kind in ("record", "enum", "fixed", "error"):
        name = str(avro.get("name"))
        space = str(avro.get("namespace", namespace) or "")
        full = name if "." in name or not space else f"{space}.{name}"
        if full in seen:
            return full
        seen.add(full)
        copy = dict(avro)
        if kind in ("record", "error"):
            copy["fields"] = [
                {**f, "type": _dedup(f["type"], seen, space)} for f in avro.get("fields", ())
            ]
        return copy
    if kind == "array":
        return {**avro, "items": _dedup(avro["items"], seen, namespace)}
    if kind == "map":
        return {**avro, "values": _dedup(avro["values"], seen, namespace)}
    if isinstance(kind, list | Mapping):
        return {**avro, "type": _dedup(kind, seen, namespace)}
    return avro
