"""Schema compatibility by the Avro specification's schema-resolution rules.

:func:`incompatibilities` answers one question: can a consumer whose port has the *reader*
schema read every record that a producer with the *writer* schema may write? It walks both
schemas side by side as the specification's "Schema Resolution" section says:

- primitives match when equal or when the writer's type promotes to the reader's
  (int -> long -> float -> double, string <-> bytes);
- records, enums and fixed match by unqualified name, or when the reader lists the
  writer's name among its aliases; records then match field by field by name (reader
  field aliases included): a reader field the writer lacks needs a default, extra writer
  fields are skipped;
- enums: a writer symbol the reader lacks needs the reader's enum default;
- fixed: the sizes must be equal;
- arrays and maps resolve their items and values;
- unions: every branch a writer union may write must resolve against the reader; a
  non-union writer needs a matching branch in a reader union;
- logical types resolve by their underlying type.

Every finding says where inside the schema it is (``Reading.location.lat``), what each side
has, and, where there is one, what to do about it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import fastavro

__all__ = ["Incompatibility", "incompatibilities"]

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})
_PROMOTIONS: Mapping[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}
_NUMBERS = ("int", "long", "float", "double")
_ALIAS_HINT = (
    "a renamed pydantic model reads data written under its old name when it declares "
    '__avro_aliases__ = ({old!r},); an Avro schema lists the old name under "aliases"'
)


@dataclass(frozen=True, slots=True)
class Incompatibility:
    """One reason a reader schema cannot read what a writer schema writes.

    ``path`` names the place inside the schema (``Reading.location.lat``; ``[]`` for array
    items, ``{}`` for map values), ``message`` what each side has there, ``hint`` what to do.
    """

    path: str
    message: str
    hint: str | None = None


def incompatibilities(writer: Any, reader: Any) -> tuple[Incompatibility, ...]:
    """Every reason ``reader`` cannot read data written with ``writer`` (empty: compatible).

    Both are Avro schemas in their JSON form (dicts, lists for unions, type names), valid
    by themselves.
    """
    try:
        w_named: dict[str, Any] = {}
        r_named: dict[str, Any] = {}
        w = fastavro.parse_schema(copy.deepcopy(writer), w_named, _write_hint=False)
        r = fastavro.parse_schema(copy.deepcopy(reader), r_named, _write_hint=False)
    except Exception as exc:
        return (Incompatibility("(schema)", f"the schemas cannot be compared: {exc}"),)
    resolver = _Resolver(w_named, r_named)
    resolver.resolve(w, r, _root_name(r, r_named) or _root_name(w, w_named) or "(value)")
    return tuple(resolver.found)


def _unqualified(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _root_name(schema: Any, named: Mapping[str, Any]) -> str | None:
    if isinstance(schema, str) and schema in named:
        schema = named[schema]
    if isinstance(schema, dict) and schema.get("type") in _NAMED:
        return _unqualified(str(schema["name"]))
    return None


class _Resolver:
    def __init__(self, w_named: Mapping[str, Any], r_named: Mapping[str, Any]) -> None:
        self.w_named = w_named
        self.r_named = r_named
        self.found: list[Incompatibility] = []
        self._seen: set[tuple[str, str]] = set()

    # -- helpers -------------------------------------------------------------------------

    def add(self, path: str, message: str, hint: str | None = None) -> None:
        self.found.append(Incompatibility(path, message, hint))

    @staticmethod
    def deref(schema: Any, named: Mapping[str, Any]) -> Any:
        """The schema itself for a reference to a named type; unwrap ``{"type": {...}}``."""
        while True:
            if isinstance(schema, str) and schema not in _PRIMITIVES:
                found = named.get(schema)
                if found is None:
                    return schema
                schema = found
            elif isinstance(schema, dict) and not isinstance(schema.get("type"), str):
                schema = schema.get("type")
            else:
                return schema

    @staticmethod
    def kind(schema: Any) -> str:
        if isinstance(schema, list):
            return "union"
        if isinstance(schema, dict):
            kind = str(schema.get("type"))
            return "record" if kind == "error" else kind
        return str(schema)

    def describe(self, schema: Any, named: Mapping[str, Any]) -> str:
        schema = self.deref(schema, named)
        kind = self.kind(schema)
        if kind == "union":
            return "union [" + ", ".join(self.describe(b, named) for b in schema) + "]"
        if kind in _NAMED:
            return f"{kind} {_unqualified(str(schema['name']))}"
        if kind == "array":
            return f"array<{self.describe(schema['items'], named)}>"
        if kind == "map":
            return f"map<{self.describe(schema['values'], named)}>"
        if isinstance(schema, dict) and schema.get("logicalType"):
            return f"{kind} ({schema['logicalType']})"
        return kind

    def names_match(self, w: Mapping[str, Any], r: Mapping[str, Any]) -> bool:
        w_name = _unqualified(str(w["name"]))
        if w_name == _unqualified(str(r["name"])):
            return True
        aliases = r.get("aliases") or ()
        return any(_unqualified(str(a)) == w_name for a in aliases)

    def shallow_match(self, w: Any, r: Any) -> bool:
        """Whether a reader union may pick ``r`` for ``w`` (the spec's "matches")."""
        w = self.deref(w, self.w_named)
        r = self.deref(r, self.r_named)
        wk, rk = self.kind(w), self.kind(r)
        if wk in _NAMED or rk in _NAMED:
            return wk == rk and self.names_match(w, r)
        if wk == rk:
            return True
        return rk in _PROMOTIONS.get(wk, ())

    # -- the walk ------------------------------------------------------------------------

    def resolve(self, w: Any, r: Any, path: str) -> None:
        w = self.deref(w, self.w_named)
        r = self.deref(r, self.r_named)
        wk, rk = self.kind(w), self.kind(r)
        if wk == "union":
            for branch in w:
                self.resolve_branch(branch, r, path, in_writer_union=True)
            return
        if rk == "union":
            self.resolve_branch(w, r, path, in_writer_union=False)
            return
        if wk in _NAMED or rk in _NAMED:
            self.resolve_named(w, r, wk, rk, path)
        elif wk == rk == "array":
            self.resolve(w["items"], r["items"], path + "[]")
        elif wk == rk == "map":
            self.resolve(w["values"], r["values"], path + "{}")
        elif wk != rk and rk not in _PROMOTIONS.get(wk, ()):
            self.add(path, self.mismatch(w, r), self.primitive_hint(wk, rk))

    def mismatch(self, w: Any, r: Any) -> str:
        return f"writer {self.describe(w, self.w_named)}, reader {self.describe(r, self.r_named)}"

    @staticmethod
    def primitive_hint(wk: str, rk: str) -> str | None:
        if wk in _NUMBERS and rk in _NUMBERS:
            return (
                "a reader may widen numbers (int -> long -> float -> double) but not narrow "
                f"them: declare the reader's field as {wk} or wider, or make the writer "
                f"write {rk}"
            )
        if wk == "null":
            return "the writer may write null: make the reader's field optional"
        if rk == "null":
            return "the reader only accepts null here: give it the writer's type"
        return "make both sides use the same type"

    def resolve_branch(self, w: Any, r: Any, path: str, *, in_writer_union: bool) -> None:
        r_branches = r if isinstance(r, list) else [r]
        exact = [b for b in r_branches if self.same_kind(w, b) and self.shallow_match(w, b)]
        chosen = exact[0] if exact else None
        if chosen is None:
            chosen = next((b for b in r_branches if self.shallow_match(w, b)), None)
        if chosen is None:
            what = self.describe(w, self.w_named)
            where = "the writer's union may write" if in_writer_union else "the writer writes"
            self.add(
                path,
                f"{where} {what}, which the reader's {self.describe(r, self.r_named)} cannot read",
                f"add {what} to the reader's type"
                + (", or remove it from the writer's union" if in_writer_union else ""),
            )
            return
        self.resolve(w, chosen, path)

    def same_kind(self, w: Any, r: Any) -> bool:
        return self.kind(self.deref(w, self.w_named)) == self.kind(self.deref(r, self.r_named))

    def resolve_named(self, w: Any, r: Any, wk: str, rk: str, path: str) -> None:
        if wk != rk:
            self.add(path, self.mismatch(w, r), "make both sides use the same type")
            return
        if not self.names_match(w, r):
            w_name = _unqualified(str(w["name"]))
            self.add(
                path,
                f"the writer's {wk} is named {w_name!r}, the reader's "
                f"{_unqualified(str(r['name']))!r}, and the reader has no alias {w_name!r}",
                _ALIAS_HINT.format(old=w_name),
            )
            # Go on comparing the contents, so every problem shows in one run.
        key = (f"{wk}:{w['name']}", str(r["name"]))
        if key in self._seen:
            return
        self._seen.add(key)
        if wk == "record":
            self.resolve_record(w, r, path)
        elif wk == "enum":
            self.resolve_enum(w, r, path)
        elif w.get("size") != r.get("size"):
            self.add(
                path,
                f"writer fixed {_unqualified(str(w['name']))} has size {w.get('size')}, "
                f"reader fixed {_unqualified(str(r['name']))} has size {r.get('size')}",
                "fixed types must have the same size on both sides",
            )

    def resolve_record(self, w: Mapping[str, Any], r: Mapping[str, Any], path: str) -> None:
        w_fields = {f["name"]: f for f in w.get("fields", ())}
        for field in r.get("fields", ()):
            name = field["name"]
            candidates = [name, *(field.get("aliases") or ())]
            source = next((w_fields[c] for c in candidates if c in w_fields), None)
            where = f"{path}.{name}"
            if source is not None:
                self.resolve(source["type"], field["type"], where)
            elif "default" not in field:
                self.add(
                    where,
                    f"the reader's field {name!r} "
                    f"({self.describe(field['type'], self.r_named)}) has no default and "
                    f"the writer's record {_unqualified(str(w['name']))} has no such field",
                    f"give {name!r} a default in the reader (in a pydantic model: "
                    f"{name}: ... = <default>), or add it to the writer",
                )

    def resolve_enum(self, w: Mapping[str, Any], r: Mapping[str, Any], path: str) -> None:
        r_symbols = set(r.get("symbols", ()))
        missing = [s for s in w.get("symbols", ()) if s not in r_symbols]
        if missing and "default" not in r:
            listed = ", ".join(repr(s) for s in missing)
            self.add(
                path,
                f"the writer's enum {_unqualified(str(w['name']))} has symbols {listed} "
                f"that the reader's enum {_unqualified(str(r['name']))} lacks, and the "
                "reader's enum has no default",
                "add the symbols to the reader's enum, or give it a default that unknown "
                "symbols are read as: in a Python Enum, a line __avro_default__ = OTHER "
                'after its member OTHER; in an Avro schema, "default": "OTHER"',
            )
