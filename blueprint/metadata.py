"""Record-metadata checks: the fields a port's ``key=`` and ``timestamp=`` name, and keys on
compacted topics.

Pure functions over a port, its schema and a topic's settings; verify turns what they find
into problems with the blueprint's locations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from blueprint.names import did_you_mean
from streamlets.ports import Port
from streamlets.schema import Schema

__all__ = ["FieldFinding", "MetadataOption", "field_finding", "is_compacted"]

#: The two options that name a field of a port's schema.
MetadataOption = Literal["key", "timestamp"]

_KEY_TYPES = frozenset({"string", "bytes", "int", "long"})
_TIME_LOGICAL = frozenset(
    {"timestamp-millis", "timestamp-micros", "local-timestamp-millis", "local-timestamp-micros"}
)
#: Logical types over int/long whose values are no point in time.
_NOT_TIME_LOGICAL = frozenset({"date", "time-millis", "time-micros"})

_NOT_KEY_LOGICAL = _TIME_LOGICAL | _NOT_TIME_LOGICAL | {"decimal"}

_WANTED: dict[MetadataOption, str] = {
    "key": (
        "a key field holds a string, bytes or an integer (or one of them or null), not a "
        "date, time or decimal"
    ),
    "timestamp": (
        "an event-time field holds a datetime (timestamp-millis or timestamp-micros) or an "
        "integer of milliseconds since the epoch (or one of them or null)"
    ),
}


@dataclass(frozen=True, slots=True)
class FieldFinding:
    """What is wrong with the field a ``key=`` or ``timestamp=`` option names, and what to do.

    ``message`` says what the port declares and what the schema has; ``hint`` lists the
    fields that would do.
    """

    message: str
    hint: str


def field_finding(
    port: Port[Any], option: MetadataOption, field: str, schema: Schema
) -> FieldFinding | None:
    """``None`` when ``field`` of ``schema`` can be the port's ``option``, else what is wrong.

    A key field is a string, bytes, int or long; an event-time field a long with a
    timestamp logical type (a datetime) or an int or long (epoch milliseconds); either may
    be a union with null. For a pydantic model the field is named by its attribute.
    """
    owner = port.owner.__name__ if port.owner is not None else "?"
    declared = f"{port.direction} '{port.name}' of {owner} declares {option}={field!r}"
    fields = record_fields(schema)
    if fields is None:
        return FieldFinding(
            f"{declared}, but its schema {schema.describe()} is not a record and has no fields",
            _other_way(option),
        )
    suitable = [name for name, avro in fields.items() if _fits(option, avro)]
    listed = ", ".join(f"{name} ({describe_type(fields[name])})" for name in suitable)
    fitting = f"fields of {schema.name} that can be the {option}: {listed or 'none'}"
    if field not in fields:
        known = ", ".join(fields) or "none"
        guess = did_you_mean(field, fields)
        return FieldFinding(
            f"{declared}, which names no field of its schema {schema.describe()}; "
            f"its fields are {known}",
            "; ".join(part for part in (guess, fitting, _other_way(option)) if part),
        )
    avro = fields[field]
    if _fits(option, avro):
        return None
    return FieldFinding(
        f"{declared}, a field of type {describe_type(avro)}; {_WANTED[option]}",
        f"{fitting}; {_other_way(option)}",
    )


def record_fields(schema: Schema) -> dict[str, Any] | None:
    """The fields of a record schema by the name a ``key=``/``timestamp=`` uses, with their
    Avro types; ``None`` when the schema is not a record.

    For a pydantic model that name is the attribute (records are model instances); for an
    Avro schema it is the Avro field name (records are dicts).
    """
    avro = schema.avro
    if not isinstance(avro, Mapping) or avro.get("type") not in ("record", "error"):
        return None
    by_name = {f["name"]: f["type"] for f in avro.get("fields", ()) if isinstance(f, Mapping)}
    model = schema.model
    if model is None:
        return by_name
    found: dict[str, Any] = {}
    for attr, info in model.model_fields.items():
        name = info.serialization_alias or info.alias or attr
        if name in by_name:
            found[attr] = by_name[name]
    return found


def is_compacted(config: Mapping[str, str]) -> bool:
    """Whether a topic's settings make it compacted (``cleanup.policy`` lists ``compact``)."""
    policy = config.get("cleanup.policy", "")
    return "compact" in {part.strip(" []'\"").lower() for part in policy.split(",")}


def describe_type(avro: Any) -> str:
    """A short form of an Avro type: ``string``, ``timestamp-micros``, ``string | null``."""
    if isinstance(avro, list):
        return " | ".join(describe_type(branch) for branch in avro)
    if isinstance(avro, Mapping):
        logical = avro.get("logicalType")
        if isinstance(logical, str):
            return logical
        kind = avro.get("type")
        if kind in ("record", "enum", "fixed", "error") and isinstance(avro.get("name"), str):
            return f"{kind} {avro['name']}"
        return describe_type(kind)
    return str(avro)


def _fits(option: MetadataOption, avro: Any) -> bool:
    branches = avro if isinstance(avro, list) else [avro]
    values = [b for b in branches if b != "null" and _base(b) != ("null", None)]
    if not values:
        return False
    check = _key_type if option == "key" else _time_type
    return all(check(*_base(b)) for b in values)


def _base(avro: Any) -> tuple[Any, str | None]:
    """(base type, logical type) of a non-union Avro type."""
    if isinstance(avro, Mapping):
        kind = avro.get("type")
        logical = avro.get("logicalType")
        if isinstance(kind, Mapping | list):  # {"type": {"type": "long", ...}}
            return _base(kind) if isinstance(kind, Mapping) else (None, None)
        return kind, logical if isinstance(logical, str) else None
    return avro, None


def _key_type(kind: Any, logical: str | None) -> bool:
    # A date, time, timestamp or decimal would be a key only by its str(): not a key a
    # consumer can rely on.
    return kind in _KEY_TYPES and logical not in _NOT_KEY_LOGICAL


def _time_type(kind: Any, logical: str | None) -> bool:
    if kind == "long" and logical in _TIME_LOGICAL:
        return True
    return kind in ("int", "long") and logical not in _NOT_TIME_LOGICAL | _TIME_LOGICAL


def _other_way(option: MetadataOption) -> str:
    if option == "key":
        return "or give key= a function of the record: key=lambda record: ..."
    return "or leave timestamp= out: a record's time is then its own (Kafka) timestamp"
