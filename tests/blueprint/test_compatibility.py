"""Schema compatibility: each resolution rule, and fastavro's own resolution as an oracle."""

from __future__ import annotations

import io
import random
import string
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blueprint.compatibility import incompatibilities


def record(name: str, *fields: tuple[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "record",
        "name": name,
        "fields": [{"name": n, "type": t} for n, t in fields],
        **extra,
    }


def paths(writer: Any, reader: Any) -> list[str]:
    return [i.path for i in incompatibilities(writer, reader)]


# -- the rules one by one -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("writer", "reader"),
    [
        ("int", "long"),
        ("int", "float"),
        ("int", "double"),
        ("long", "float"),
        ("long", "double"),
        ("float", "double"),
        ("string", "bytes"),
        ("bytes", "string"),
        ("null", "null"),
        ("boolean", "boolean"),
    ],
)
def test_promotions_and_equal_primitives_are_compatible(writer: str, reader: str) -> None:
    assert incompatibilities(writer, reader) == ()


@pytest.mark.parametrize(
    ("writer", "reader"),
    [("long", "int"), ("double", "float"), ("float", "long"), ("string", "int"), ("null", "int")],
)
def test_narrowing_and_unrelated_primitives_are_not(writer: str, reader: str) -> None:
    (found,) = incompatibilities(writer, reader)
    assert found.message == f"writer {writer}, reader {reader}"
    assert found.hint


def test_the_path_names_the_nested_field() -> None:
    loc_w = record("Location", ("lat", "double"), ("lon", "double"))
    loc_r = record("Location", ("lat", "int"), ("lon", "double"))
    (found,) = incompatibilities(
        record("Reading", ("location", loc_w)), record("Reading", ("location", loc_r))
    )
    assert found.path == "Reading.location.lat"
    assert found.message == "writer double, reader int"


def test_reader_field_needs_a_default_when_the_writer_lacks_it() -> None:
    writer = record("R", ("a", "int"))
    reader = record("R", ("a", "int"), ("b", "string"))
    (found,) = incompatibilities(writer, reader)
    assert found.path == "R.b" and "no default" in found.message and "default" in str(found.hint)
    with_default = {
        **reader,
        "fields": [*reader["fields"][:1], {"name": "b", "type": "string", "default": ""}],
    }
    assert incompatibilities(writer, with_default) == ()


def test_extra_writer_fields_are_ignored_and_field_aliases_match() -> None:
    writer = record("R", ("old", "int"), ("extra", "string"))
    reader = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "new", "type": "long", "aliases": ["old"]}],
    }
    assert incompatibilities(writer, reader) == ()


def test_renamed_record_needs_an_alias_and_the_hint_says_so() -> None:
    writer = record("Reading", ("a", "int"))
    (found,) = incompatibilities(writer, record("Measurement", ("a", "int")))
    assert "'Reading'" in found.message and "__avro_aliases__" in str(found.hint)
    aliased = record("Measurement", ("a", "int"), aliases=["Reading"])
    assert incompatibilities(writer, aliased) == ()
    namespaced = record("Measurement", ("a", "int"), namespace="x.y", aliases=["a.b.Reading"])
    assert incompatibilities({**writer, "namespace": "a.b"}, namespaced) == ()


def test_namespaces_do_not_matter_for_the_unqualified_name() -> None:
    assert (
        incompatibilities(
            record("R", ("a", "int"), namespace="one"), record("R", ("a", "int"), namespace="two")
        )
        == ()
    )


def test_enum_symbols_and_default() -> None:
    writer = {"type": "enum", "name": "Colour", "symbols": ["RED", "GREEN", "BLUE"]}
    reader = {"type": "enum", "name": "Colour", "symbols": ["RED", "GREEN"]}
    (found,) = incompatibilities(writer, reader)
    assert "'BLUE'" in found.message
    assert incompatibilities(writer, {**reader, "default": "RED"}) == ()
    assert incompatibilities(reader, writer) == ()


def test_fixed_size_and_name() -> None:
    writer = {"type": "fixed", "name": "Hash", "size": 16}
    assert incompatibilities(writer, writer) == ()
    (found,) = incompatibilities(writer, {**writer, "size": 32})
    assert "size 16" in found.message and "size 32" in found.message
    assert paths(writer, {**writer, "name": "Other"}) == ["Other"]


def test_arrays_and_maps_resolve_their_items() -> None:
    assert (
        incompatibilities({"type": "array", "items": "int"}, {"type": "array", "items": "long"})
        == ()
    )
    assert paths({"type": "array", "items": "long"}, {"type": "array", "items": "int"}) == [
        "(value)[]"
    ]
    assert paths(
        record("R", ("m", {"type": "map", "values": "double"})),
        record("R", ("m", {"type": "map", "values": "float"})),
    ) == ["R.m{}"]
    (found,) = incompatibilities(
        {"type": "array", "items": "int"}, {"type": "map", "values": "int"}
    )
    assert found.message == "writer array<int>, reader map<int>"


def test_unions_on_either_side() -> None:
    assert incompatibilities("int", ["null", "long"]) == ()
    assert incompatibilities(["null", "int"], ["null", "int", "string"]) == ()
    (found,) = incompatibilities(["null", "string"], "string")
    assert "null" in found.message and "union" in str(found.hint)
    (found,) = incompatibilities("boolean", ["null", "string"])
    assert "boolean" in found.message
    assert incompatibilities(["int", "long"], "double") == ()


def test_logical_types_resolve_by_their_base_type() -> None:
    millis = {"type": "long", "logicalType": "timestamp-millis"}
    assert incompatibilities(millis, "long") == ()
    assert incompatibilities("long", millis) == ()
    (found,) = incompatibilities(millis, {"type": "int", "logicalType": "date"})
    assert found.message == "writer long (timestamp-millis), reader int (date)"


def test_named_references_and_recursion() -> None:
    node_w = {
        "type": "record",
        "name": "Node",
        "fields": [{"name": "value", "type": "int"}, {"name": "next", "type": ["null", "Node"]}],
    }
    node_r = {
        "type": "record",
        "name": "Node",
        "fields": [{"name": "value", "type": "long"}, {"name": "next", "type": ["null", "Node"]}],
    }
    assert incompatibilities(node_w, node_r) == ()
    assert paths(node_r, node_w) == ["Node.value"]
    shared = record("P", ("a", record("L", ("x", "int"))), ("b", "L"))
    narrowed = record("P", ("a", record("L", ("x", "int"))), ("b", "L"))
    assert incompatibilities(shared, narrowed) == ()


def test_every_problem_of_a_pair_is_reported() -> None:
    writer = record("R", ("a", "double"), ("b", "string"))
    reader = record("S", ("a", "int"), ("b", "int"), ("c", "int"))
    assert paths(writer, reader) == ["S", "S.a", "S.b", "S.c"]


# -- fastavro as the oracle ---------------------------------------------------------------

_SCALARS = ["null", "boolean", "int", "long", "float", "double", "string", "bytes"]
_FIELDS = ["a", "b", "c", "d"]


class _Gen:
    """Random schemas from a small vocabulary, so that writer and reader often overlap."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.defined: set[str] = set()
        self.building: set[str] = set()

    def named(self, name: str, build: Any) -> Any:
        if name in self.building:
            return "int"  # no recursive records: their values would never end
        if name in self.defined:
            return name
        self.building.add(name)
        schema = build()
        self.building.discard(name)
        self.defined.add(name)
        return schema

    def type(self, depth: int) -> Any:
        rnd = self.rnd
        choice = rnd.random()
        if depth <= 0 or choice < 0.45:
            return rnd.choice(_SCALARS)
        if choice < 0.55:
            symbols = rnd.sample(["X", "Y", "Z"], rnd.randint(1, 3))
            extra = {"default": symbols[0]} if rnd.random() < 0.3 else {}
            return self.named(
                "E", lambda: {"type": "enum", "name": "E", "symbols": symbols, **extra}
            )
        if choice < 0.62:
            size = rnd.choice([2, 4])
            return self.named("F", lambda: {"type": "fixed", "name": "F", "size": size})
        if choice < 0.72:
            return {"type": "array", "items": self.type(depth - 1)}
        if choice < 0.8:
            return {"type": "map", "values": self.type(depth - 1)}
        if choice < 0.9:
            branches = rnd.sample(
                ["null", "int", "long", "string", "double", "boolean"], rnd.randint(1, 3)
            )
            return branches
        return self.named("N", lambda: self.record("N", depth - 1))

    def record(self, name: str, depth: int) -> dict[str, Any]:
        rnd = self.rnd
        fields = []
        for fname in rnd.sample(_FIELDS, rnd.randint(0, len(_FIELDS))):
            ftype = self.type(depth)
            field: dict[str, Any] = {"name": fname, "type": ftype}
            if rnd.random() < 0.3:
                default = _default(ftype)
                if default is not _NO_DEFAULT:
                    field["default"] = default
            fields.append(field)
        schema: dict[str, Any] = {"type": "record", "name": name, "fields": fields}
        return schema


_NO_DEFAULT = object()


def _default(schema: Any) -> Any:
    if isinstance(schema, list):
        return _default(schema[0])
    if isinstance(schema, dict):
        kind = schema["type"]
        if kind == "enum":
            return schema["symbols"][0]
        if kind == "array":
            return []
        if kind == "map":
            return {}
        if kind == "fixed":
            return "\u0000" * schema["size"]
        return _NO_DEFAULT
    return {
        "null": None,
        "boolean": False,
        "int": 0,
        "long": 0,
        "float": 0.0,
        "double": 0.0,
        "string": "",
        "bytes": "",
    }.get(schema, _NO_DEFAULT)


def _datum(schema: Any, named: dict[str, Any], rnd: random.Random) -> Any:
    if isinstance(schema, str) and schema in named:
        schema = named[schema]
    if isinstance(schema, list):
        return _datum(rnd.choice(schema), named, rnd)
    if isinstance(schema, dict):
        kind = schema["type"]
        if kind == "record":
            named.setdefault(schema["name"], schema)
            return {f["name"]: _datum(f["type"], named, rnd) for f in schema["fields"]}
        if kind == "enum":
            named.setdefault(schema["name"], schema)
            return rnd.choice(schema["symbols"])
        if kind == "fixed":
            named.setdefault(schema["name"], schema)
            return bytes(rnd.randrange(256) for _ in range(schema["size"]))
        if kind == "array":
            return [_datum(schema["items"], named, rnd) for _ in range(rnd.randint(1, 3))]
        if kind == "map":
            return {f"k{i}": _datum(schema["values"], named, rnd) for i in range(rnd.randint(1, 2))}
    return {
        "null": lambda: None,
        "boolean": lambda: rnd.random() < 0.5,
        "int": lambda: rnd.randint(-1000, 1000),
        "long": lambda: rnd.randint(-(2**40), 2**40),
        "float": lambda: float(rnd.randint(-100, 100)),
        "double": rnd.random,
        # bytes read as a string must be UTF-8 for fastavro; the spec allows the promotion.
        "string": lambda: "".join(rnd.choices(string.ascii_letters, k=3)),
        "bytes": lambda: "".join(rnd.choices(string.ascii_letters, k=3)).encode(),
    }[schema]()


def _data_dependent(schema: Any) -> bool:
    """Whether resolving may fail only for some values (a union branch, an enum symbol)."""
    if isinstance(schema, list):
        return True
    if isinstance(schema, dict):
        if schema["type"] == "enum":
            return True
        return any(_data_dependent(schema.get(k)) for k in ("items", "values")) or any(
            _data_dependent(f["type"]) for f in schema.get("fields", ())
        )
    return False


def _fastavro_reads(writer: Any, reader: Any, data: list[Any]) -> bool:
    parsed_w = fastavro.parse_schema(writer)
    parsed_r = fastavro.parse_schema(reader)
    for datum in data:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed_w, datum)
        buf.seek(0)
        try:
            fastavro.schemaless_reader(buf, parsed_w, parsed_r)
        except Exception:  # any failure to read is a verdict
            return False
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32), st.integers(0, 2**32), st.booleans())
def test_agrees_with_fastavro_resolution(seed_w: int, seed_r: int, derive: bool) -> None:
    writer = _Gen(random.Random(seed_w)).record("R", 2)
    # Half of the readers are the writer's schema from a related seed, so compatible pairs
    # are common, not only the obvious failures.
    reader = _Gen(random.Random(seed_w if derive else seed_r)).record("R", 2)
    if derive:
        reader = _mutate(reader, random.Random(seed_r))
    rnd = random.Random(seed_w ^ seed_r)
    data = [_datum(writer, {}, rnd) for _ in range(8)]
    ours = incompatibilities(writer, reader)
    theirs = _fastavro_reads(writer, reader, data)
    if not ours:
        assert theirs, f"we call {reader} able to read {writer}, fastavro cannot"
    if not theirs:
        assert ours, f"fastavro cannot read {writer} as {reader}, we found nothing"
    if ours and not _data_dependent(writer):
        assert not theirs, f"fastavro reads {writer} as {reader}, we found {ours}"


def _mutate(schema: dict[str, Any], rnd: random.Random) -> dict[str, Any]:
    fields = [dict(f) for f in schema["fields"]]
    renamed = False
    for field in fields:
        roll = rnd.random()
        if roll < 0.15 and field["type"] in ("int", "long", "float"):
            field["type"] = {"int": "long", "long": "double", "float": "double"}[field["type"]]
            field.pop("default", None)
        elif roll < 0.25 and isinstance(field["type"], str) and field["type"] in _SCALARS:
            field["type"] = ["null", field["type"]] if field["type"] != "null" else "null"
            field.pop("default", None)
        elif roll < 0.3 and not renamed:
            renamed = True
            field["aliases"] = [field["name"]]
            field["name"] = "z"
        elif roll < 0.4 and field["type"] in ("long", "double", "string"):
            field["type"] = {"long": "int", "double": "float", "string": "int"}[field["type"]]
            field.pop("default", None)
    if rnd.random() < 0.3:
        fields.append({"name": "y", "type": "string", "default": ""})
    elif rnd.random() < 0.1:
        fields.append({"name": "x", "type": "int"})
    return {**schema, "fields": fields}
