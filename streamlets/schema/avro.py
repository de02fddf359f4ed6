"""Avro schemas as JSON data: names, emission of derived types, structure checks, parsing."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any

import fastavro

from streamlets.errors import SchemaError

__all__ = [
    "NAME",
    "NAMED_KINDS",
    "AvroSchema",
    "Named",
    "avro_name",
    "emit",
    "fullname",
    "interned",
    "is_fullname",
    "named_types",
    "parse",
]

AvroSchema = str | list[Any] | dict[str, Any]
"""A JSON-able Avro schema: a type name, a union (list) or a complex type (dict)."""

#: A valid Avro name (of a field, or one part of a full name).
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: The kinds of Avro types that have a name.
NAMED_KINDS = frozenset({"record", "enum", "fixed", "error"})


def is_fullname(name: str) -> bool:
    """Whether ``name`` is a valid Avro full name (dot-separated valid names)."""
    return all(NAME.match(part) for part in name.split("."))


def fullname(name: str, namespace: str | None) -> str:
    """The full name of ``name`` in ``namespace`` (none: the name itself)."""
    return f"{namespace}.{name}" if namespace else name


@dataclass(slots=True, eq=False)
class Named:
    """A named Avro type; emitted as its definition once, then as its full name."""

    kind: str
    name: str
    namespace: str | None
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def fullname(self) -> str:
        """The type's full name."""
        return fullname(self.name, self.namespace)


def emit(node: Any, namespace: str | None, seen: set[str], where: str) -> Any:
    """The JSON-able schema: each named type defined at its first use, then named."""
    if isinstance(node, Named):
        full = node.fullname
        if full in seen:
            if namespace and "." not in full:
                raise SchemaError(
                    f"{where}: '{full}' has no Avro namespace but is used again inside "
                    f"the namespace '{namespace}', where Avro cannot name it; give it an "
                    "__avro_namespace__"
                )
            return full
        seen.add(full)
        out: dict[str, Any] = {"type": node.kind, "name": node.name}
        if (node.namespace or None) != (namespace or None):
            out["namespace"] = node.namespace or ""
        for key, value in node.body.items():
            out[key] = emit(value, node.namespace, seen, where)
        return out
    if isinstance(node, list):
        return [emit(v, namespace, seen, where) for v in node]
    if isinstance(node, dict):
        # "default" values stay the very objects the converters compare against.
        return {
            k: v
            if k in ("default", "symbols", "aliases", "doc")
            else emit(v, namespace, seen, where)
            for k, v in node.items()
        }
    return node


def parse(avro: Any, what: str) -> Any:
    """fastavro's parsed form of ``avro``; a SchemaError saying why when it is not valid."""
    try:
        problem = _structure_problem(avro)
        if problem:
            raise ValueError(problem)
        return fastavro.parse_schema(avro)
    except Exception as exc:
        raise SchemaError(f"{what} is not a valid Avro schema: {exc}") from exc


def _structure_problem(avro: Any) -> str | None:
    """What fastavro lets pass but the Avro specification does not (names, record fields)."""
    if isinstance(avro, list):
        return next((p for p in map(_structure_problem, avro) if p), None)
    if not isinstance(avro, dict):
        return None
    kind = avro.get("type")
    if kind in NAMED_KINDS:
        name = avro.get("name")
        if not isinstance(name, str) or not is_fullname(name):
            return f"{kind} name {name!r} is not a valid Avro name"
        ns = avro.get("namespace")
        if ns not in (None, "") and (not isinstance(ns, str) or not is_fullname(ns)):
            return f"{kind} {name}: namespace {ns!r} is not a valid Avro namespace"
    if kind in ("record", "error"):
        fields = avro.get("fields")
        if not isinstance(fields, list):
            return f"record {avro.get('name')} has no list of fields"
        for f in fields:
            if not isinstance(f, dict) or "type" not in f:
                return f"record {avro.get('name')}: field {f!r} has no type"
            fname = f.get("name")
            if not isinstance(fname, str) or not NAME.match(fname):
                return f"record {avro.get('name')}: field name {fname!r} is not a valid Avro name"
            problem = _structure_problem(f["type"])
            if problem:
                return problem
        return None
    for key in ("type", "items", "values"):
        problem = _structure_problem(avro.get(key))
        if problem:
            return problem
    return None


def avro_name(avro: Any) -> tuple[str, str]:
    """(name, kind) of a JSON Avro schema: the full name of a named type, else the type."""
    if isinstance(avro, str):
        return avro, avro
    if isinstance(avro, list):
        return "union", "union"
    kind = avro.get("type")
    if kind in NAMED_KINDS:
        name = str(avro.get("name", ""))
        ns = avro.get("namespace")
        return (name if "." in name else fullname(name, ns)), str(kind)
    if isinstance(kind, str):
        return str(avro.get("logicalType") or kind), kind
    return avro_name(kind)


def interned(value: Any) -> Any:
    """A copy with interned strings: fastavro looks record fields up in each datum by the
    schema's field names, and an interned name matches the (interned) keys of the records
    by identity instead of comparing characters."""
    if isinstance(value, str):
        return sys.intern(value)
    if isinstance(value, list):
        return [interned(v) for v in value]
    if isinstance(value, dict):
        return {sys.intern(k): interned(v) for k, v in value.items()}
    return value


def named_types(schema: Any) -> dict[str, Any]:
    """The named types (records, errors, enums, fixed) defined in an Avro schema, by name
    (full names in fastavro's parsed form, where references use them too)."""
    named: dict[str, Any] = {}

    def collect(schema: Any) -> None:
        if isinstance(schema, list):
            for s in schema:
                collect(s)
        elif isinstance(schema, dict):
            kind = schema.get("type")
            if kind in ("record", "error", "enum", "fixed") and "name" in schema:
                named[schema["name"]] = schema
            for key in ("type", "items", "values"):
                if isinstance(schema.get(key), list | dict):
                    collect(schema[key])
            for f in schema.get("fields", ()):
                collect(f["type"])

    collect(schema)
    return named
