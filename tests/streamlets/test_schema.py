"""Schemas: pydantic model -> Avro derivation, Schema.of, converters, validation."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import Enum, IntEnum, StrEnum
from typing import Annotated, Any, Generic, Literal, TypeVar

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, RootModel, ValidationError

from streamlets.errors import SchemaError
from streamlets.schema import Schema, avro_schema

# ------------------------------------------------------------------------- models


class Kind(StrEnum):
    """What a sample is."""

    alpha = "alpha"
    beta = "beta"


class Priority(IntEnum):
    LOW = 1
    HIGH = 2


class Shade(Enum):
    dark_red = "dark-red"
    light_blue = "light-blue"


class Leaf(BaseModel):
    """A named weight."""

    name: str
    weight: float


class Tree(BaseModel):
    leaf: Leaf
    children: list[Tree] = []


class Cat(BaseModel):
    name: str


class Dog(BaseModel):
    name: str


class Everything(BaseModel):
    """A model with every supported type."""

    __avro_namespace__ = "tests.everything"

    text: str
    number: int
    ratio: float
    flag: bool
    blob: bytes
    nothing: None = None
    maybe: int | None = None
    maybe_text: str | None = "x"
    choice: int | str | Leaf = 0
    pet: Cat | Dog | None = None
    items: list[Leaf] = []
    numbers: tuple[int, ...] = ()
    labels: set[str] = set()
    frozen: frozenset[int] = frozenset()
    weights: dict[str, float] = {}
    leaves: dict[str, Leaf] = {}
    kind: Kind = Kind.alpha
    priority: Priority = Priority.LOW
    shade: Shade = Shade.dark_red
    mode: Literal["on", "off"] = "off"
    at: datetime
    day: date
    clock: time
    ident: uuid.UUID
    amount: Decimal = Field(max_digits=8, decimal_places=3)
    tree: Tree | None = None
    leaf: Leaf = Leaf(name="default", weight=1.0)


def everything(**overrides: Any) -> Everything:
    values: dict[str, Any] = {
        "text": "héllo",
        "number": -(2**62),
        "ratio": 2.5,
        "flag": True,
        "blob": b"\x00\xff\x10",
        "maybe": 7,
        "maybe_text": None,
        "choice": Leaf(name="c", weight=0.5),
        "pet": Dog(name="rex"),
        "items": [Leaf(name="a", weight=1.0), Leaf(name="b", weight=2.0)],
        "numbers": (1, 2, 3),
        "labels": {"x", "y"},
        "frozen": frozenset({4, 5}),
        "weights": {"w": 0.25},
        "leaves": {"k": Leaf(name="k", weight=3.0)},
        "kind": Kind.beta,
        "priority": Priority.HIGH,
        "shade": Shade.light_blue,
        "mode": "on",
        "at": datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC),
        "day": date(2024, 2, 29),
        "clock": time(23, 59, 59, 999999),
        "ident": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "amount": Decimal("-12345.678"),
        "tree": Tree(
            leaf=Leaf(name="root", weight=0), children=[Tree(leaf=Leaf(name="kid", weight=1))]
        ),
    }
    values.update(overrides)
    return Everything(**values)


def write_read(schema: Schema, record: Any, reader: Schema | None = None) -> Any:
    """Record -> Avro bytes (fastavro) -> record, as the codecs do."""
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema.parsed, schema.to_datum(record))
    target = reader or schema
    datum = fastavro.schemaless_reader(
        io.BytesIO(buf.getvalue()),
        schema.parsed,
        None if target is schema else target.parsed,
        return_named_type=target.named_unions,
    )
    return target.from_datum(datum)


def field_of(avro: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in avro["fields"] if f["name"] == name)


# ------------------------------------------------------------------ derivation


def test_record_name_namespace_doc() -> None:
    avro = avro_schema(Everything)
    assert avro["type"] == "record"
    assert avro["name"] == "Everything"
    assert avro["namespace"] == "tests.everything"
    assert avro["doc"] == "A model with every supported type."
    assert Schema.of(Everything).name == "tests.everything.Everything"


def test_docstring_only_from_the_class_itself() -> None:
    class NoDoc(BaseModel):
        a: int

    class Sub(Leaf):
        extra: int = 0

    assert "doc" not in avro_schema(NoDoc)
    assert "doc" not in avro_schema(Sub)
    assert avro_schema(Leaf)["doc"] == "A named weight."


def test_primitive_types() -> None:
    avro = avro_schema(Everything)
    expected = {
        "text": "string",
        "number": "long",
        "ratio": "double",
        "flag": "boolean",
        "blob": "bytes",
        "nothing": "null",
    }
    for name, avro_type in expected.items():
        assert field_of(avro, name)["type"] == avro_type


def test_derived_schema_is_valid_avro() -> None:
    parsed = fastavro.parse_schema(avro_schema(Everything))
    assert "tests.everything.Everything" in parsed["__named_schemas"]
    # Schema.parsed is exactly that, computed once.
    schema = Schema.of(Everything)
    assert schema.parsed["name"] == "tests.everything.Everything"
    assert Schema.of(Everything) is schema
    assert avro_schema(Everything) is schema.avro


def test_optional_null_first_when_default_none() -> None:
    class Opt(BaseModel):
        a: int | None = None
        b: str | None = "x"
        c: float | None

    avro = avro_schema(Opt)
    assert field_of(avro, "a") == {"name": "a", "type": ["null", "long"], "default": None}
    assert field_of(avro, "b") == {"name": "b", "type": ["string", "null"], "default": "x"}
    # Required: no default at all.
    assert field_of(avro, "c") == {"name": "c", "type": ["double", "null"]}


def test_union_flattened_with_default_branch_first() -> None:
    class U(BaseModel):
        a: int | (str | None) = "hi"
        b: int | str = 3
        c: int | str = "x"

    avro = avro_schema(U)
    assert field_of(avro, "a")["type"] == ["string", "long", "null"]
    assert field_of(avro, "a")["default"] == "hi"
    assert field_of(avro, "b")["type"] == ["long", "string"]
    assert field_of(avro, "c")["type"] == ["string", "long"]


@pytest.mark.parametrize(
    ("annotation", "clash"),
    [
        (list[int] | list[str], "array"),
        (dict[str, int] | dict[str, str], "map"),
        (int | datetime, "long"),
        (str | uuid.UUID, "string"),
    ],
)
def test_union_rejects_two_branches_of_one_type(annotation: Any, clash: str) -> None:
    model = type("Clash", (BaseModel,), {"__annotations__": {"value": annotation}})
    with pytest.raises(SchemaError, match=rf"field 'value' of Clash: .*'{clash}'"):
        Schema.of(model)


def test_containers() -> None:
    avro = avro_schema(Everything)
    assert field_of(avro, "numbers")["type"] == {"type": "array", "items": "long"}
    assert field_of(avro, "labels")["type"] == {"type": "array", "items": "string"}
    assert field_of(avro, "frozen")["type"] == {"type": "array", "items": "long"}
    assert field_of(avro, "weights")["type"] == {"type": "map", "values": "double"}


def test_dict_with_non_str_keys_is_rejected() -> None:
    class M(BaseModel):
        counts: dict[int, str]

    with pytest.raises(SchemaError, match=r"field 'counts' of M: .*string keys"):
        avro_schema(M)


def test_fixed_length_tuple_is_rejected() -> None:
    class M(BaseModel):
        pair: tuple[int, str]

    with pytest.raises(SchemaError, match=r"field 'pair' of M.*tuple\[X, \.\.\.\]"):
        avro_schema(M)


def test_nested_model_defined_once_then_referenced() -> None:
    avro = avro_schema(Everything)
    choice = field_of(avro, "choice")["type"]
    assert choice[2]["type"] == "record" and choice[2]["name"] == "Leaf"
    assert choice[2]["doc"] == "A named weight."
    # Later uses name the record by its full name (it took the top-level namespace).
    assert field_of(avro, "items")["type"] == {
        "type": "array",
        "items": "tests.everything.Leaf",
    }
    assert field_of(avro, "leaf")["type"] == "tests.everything.Leaf"


def test_recursive_model() -> None:
    avro = avro_schema(Tree)
    children = field_of(avro, "children")
    assert children["type"] == {"type": "array", "items": "Tree"}
    assert children["default"] == []
    fastavro.parse_schema(avro)
    tree = Tree(leaf=Leaf(name="a", weight=1), children=[Tree(leaf=Leaf(name="b", weight=2))])
    assert write_read(Schema.of(Tree), tree) == tree


def test_namespaced_nested_model_keeps_its_namespace() -> None:
    class Inner(BaseModel):
        __avro_namespace__ = "other.place"
        x: int

    class Outer(BaseModel):
        __avro_namespace__ = "app"
        first: Inner
        second: Inner
        leaf: Leaf

    avro = avro_schema(Outer)
    assert field_of(avro, "first")["type"]["namespace"] == "other.place"
    assert field_of(avro, "second")["type"] == "other.place.Inner"
    # A model without a namespace takes the top-level one.
    assert "namespace" not in field_of(avro, "leaf")["type"]
    named = fastavro.parse_schema(avro)["__named_schemas"]
    assert {"app.Outer", "other.place.Inner", "app.Leaf"} <= set(named)


def test_aliases_for_renamed_models_and_fields() -> None:
    class Renamed(BaseModel):
        __avro_aliases__ = ("OldName", "legacy.Older")
        value: int = Field(json_schema_extra={"avro_aliases": ["old_value"]})

    avro = avro_schema(Renamed)
    assert avro["aliases"] == ["OldName", "legacy.Older"]
    assert field_of(avro, "value")["aliases"] == ["old_value"]


def test_renamed_model_reads_data_written_under_old_name() -> None:
    class OldName(BaseModel):
        old_value: int

    class NewName(BaseModel):
        __avro_aliases__ = ("OldName",)
        value: int = Field(json_schema_extra={"avro_aliases": ["old_value"]})

    result = write_read(Schema.of(OldName), OldName(old_value=5), Schema.of(NewName))
    assert result == NewName(value=5)


def test_field_alias_is_the_avro_name() -> None:
    class Aliased(BaseModel):
        sensor_id: str = Field(alias="sensorId")
        kind: str = Field(serialization_alias="Kind", default="k")
        other: int = Field(validation_alias=AliasChoices("other", "Other"), default=0)

    avro = avro_schema(Aliased)
    assert [f["name"] for f in avro["fields"]] == ["sensorId", "Kind", "other"]
    record = Aliased(sensorId="s1", kind="z", Other=4)
    assert Schema.of(Aliased).to_datum(record) == {"sensorId": "s1", "Kind": "z", "other": 4}
    assert write_read(Schema.of(Aliased), record) == record


def test_invalid_field_name_is_rejected() -> None:
    class Dashed(BaseModel):
        sensor_id: str = Field(alias="sensor-id")

    with pytest.raises(SchemaError, match=r"field 'sensor_id' of Dashed: 'sensor-id'"):
        avro_schema(Dashed)


def test_generic_model_name_is_sanitised() -> None:
    T = TypeVar("T")

    class Box(BaseModel, Generic[T]):
        """A box."""

        item: T

    assert avro_schema(Box[int])["name"] == "Box_int"
    assert avro_schema(Box[int])["doc"] == "A box."
    assert field_of(avro_schema(Box[int]), "item")["type"] == "long"
    assert avro_schema(Box[dict[str, Leaf]])["name"] == "Box_dict_str_Leaf"
    with pytest.raises(SchemaError, match="type variable"):
        avro_schema(Box)


def test_enum_symbols_are_values_when_they_are_names() -> None:
    avro = avro_schema(Everything)
    kind = field_of(avro, "kind")
    assert kind["type"] == {
        "type": "enum",
        "name": "Kind",
        "doc": "What a sample is.",
        "symbols": ["alpha", "beta"],
    }
    assert kind["default"] == "alpha"


def test_enum_symbols_are_names_otherwise() -> None:
    avro = avro_schema(Everything)
    priority = field_of(avro, "priority")
    assert priority["type"]["symbols"] == ["LOW", "HIGH"]
    assert priority["default"] == "LOW"
    shade = field_of(avro, "shade")
    assert shade["type"]["symbols"] == ["dark_red", "light_blue"]
    assert shade["default"] == "dark_red"


def test_enum_datum_and_back() -> None:
    schema = Schema.of(Everything)
    record = everything()
    datum = schema.to_datum(record)
    assert datum["kind"] == "beta"
    assert datum["priority"] == "HIGH"
    assert datum["shade"] == "light_blue"
    back = write_read(schema, record)
    assert back.priority is Priority.HIGH
    assert back.shade is Shade.light_blue
    assert back.kind is Kind.beta


def test_literal() -> None:
    class Lit(BaseModel):
        mode: Literal["on", "off"] = "off"
        level: Literal[1, 2, 3] = 1
        label: Literal["a-b", "c"] = "c"
        maybe: Literal["x", None] = None

    avro = avro_schema(Lit)
    assert field_of(avro, "mode") == {
        "name": "mode",
        "type": {"type": "enum", "name": "Lit_mode", "symbols": ["on", "off"]},
        "default": "off",
    }
    assert field_of(avro, "level")["type"] == "long"
    assert field_of(avro, "label")["type"] == "string"
    assert field_of(avro, "maybe")["type"] == [
        "null",
        {"type": "enum", "name": "Lit_maybe", "symbols": ["x"]},
    ]
    record = Lit(mode="on", level=3, label="a-b", maybe="x")
    assert write_read(Schema.of(Lit), record) == record


def test_logical_types() -> None:
    avro = avro_schema(Everything)
    assert field_of(avro, "at")["type"] == {"type": "long", "logicalType": "timestamp-micros"}
    assert field_of(avro, "day")["type"] == {"type": "int", "logicalType": "date"}
    assert field_of(avro, "clock")["type"] == {"type": "long", "logicalType": "time-micros"}
    assert field_of(avro, "ident")["type"] == {"type": "string", "logicalType": "uuid"}
    assert field_of(avro, "amount")["type"] == {
        "type": "bytes",
        "logicalType": "decimal",
        "precision": 8,
        "scale": 3,
    }


def test_decimal_constraints_in_annotated_and_lists() -> None:
    class Money(BaseModel):
        amounts: list[Annotated[Decimal, Field(max_digits=10, decimal_places=2)]]
        maybe: Decimal | None = Field(default=None, max_digits=5, decimal_places=1)

    avro = avro_schema(Money)
    assert field_of(avro, "amounts")["type"]["items"]["precision"] == 10
    assert field_of(avro, "maybe")["type"][1]["scale"] == 1
    record = Money(amounts=[Decimal("1.50"), Decimal("-99.99")], maybe=Decimal("1.5"))
    assert write_read(Schema.of(Money), record) == record


def test_decimal_without_constraints_is_rejected() -> None:
    class Price(BaseModel):
        amount: Decimal

    with pytest.raises(
        SchemaError, match=r"field 'amount' of Price: .*max_digits=.*decimal_places"
    ):
        avro_schema(Price)


def test_datetimes_are_utc_on_read() -> None:
    class When(BaseModel):
        at: datetime

    schema = Schema.of(When)
    naive = write_read(schema, When(at=datetime(2024, 1, 1, 12, 0)))
    assert naive.at == datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    plus2 = timezone(timedelta(hours=2))
    aware = write_read(schema, When(at=datetime(2024, 1, 1, 12, 0, tzinfo=plus2)))
    assert aware.at.tzinfo is UTC
    assert aware.at == datetime(2024, 1, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("annotation", "shown"),
    [(Any, "Any"), (object, "object"), (complex, "complex"), (list, "list")],
)
def test_types_without_avro_form_name_model_and_field(annotation: Any, shown: str) -> None:
    model = type("Reading", (BaseModel,), {"__annotations__": {"payload": annotation}})
    with pytest.raises(SchemaError, match=rf"field 'payload' of Reading: .*{shown}") as info:
        Schema.of(model)
    assert "Avro" in str(info.value)


def test_other_classes_have_no_avro_form() -> None:
    class Point:
        pass

    class Reading(BaseModel):
        model_config = ConfigDict(arbitrary_types_allowed=True)
        where: Point

    with pytest.raises(
        SchemaError, match=r"field 'where' of Reading: type .*Point has no Avro form"
    ):
        avro_schema(Reading)


def test_root_model_is_rejected() -> None:
    class Items(RootModel[list[int]]):
        pass

    with pytest.raises(SchemaError, match="RootModel"):
        Schema.of(Items)


def test_two_classes_with_one_name_are_rejected() -> None:
    def make() -> type[BaseModel]:
        class Part(BaseModel):
            x: int

        return Part

    first, second = make(), make()

    class Whole(BaseModel):
        a: first  # type: ignore[valid-type]
        b: second  # type: ignore[valid-type]

    with pytest.raises(SchemaError, match="two different types are named 'Part'"):
        avro_schema(Whole)


# -------------------------------------------------------------------- defaults


def test_defaults_are_encoded_per_the_avro_spec() -> None:
    class Defaults(BaseModel):
        blob: bytes = b"\x00\xff"
        at: datetime = datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)
        naive_at: datetime = datetime(1970, 1, 2)
        day: date = date(1970, 1, 11)
        clock: time = time(0, 0, 1)
        ident: uuid.UUID = uuid.UUID(int=1)
        amount: Decimal = Field(Decimal("-1.5"), max_digits=4, decimal_places=2)
        kind: Kind = Kind.beta
        priority: Priority = Priority.HIGH
        leaf: Leaf = Leaf(name="n", weight=2)
        tags: list[str] = Field(default_factory=lambda: ["a"])
        count: int = 3

    avro = avro_schema(Defaults)
    defaults = {f["name"]: f["default"] for f in avro["fields"]}
    assert defaults == {
        "blob": "\x00\xff",
        "at": 1_000_000,
        "naive_at": 86_400_000_000,
        "day": 10,
        "clock": 1_000_000,
        "ident": "00000000-0000-0000-0000-000000000001",
        # -150 as two's complement big-endian bytes, as code points.
        "amount": "\xff\x6a",
        "kind": "beta",
        "priority": "HIGH",
        "leaf": {"name": "n", "weight": 2.0},
        "tags": ["a"],
        "count": 3,
    }
    fastavro.parse_schema(avro)


def test_required_fields_get_no_default() -> None:
    avro = avro_schema(Everything)
    assert "default" not in field_of(avro, "text")
    assert "default" not in field_of(avro, "at")


def test_bad_default_is_reported() -> None:
    class Bad(BaseModel):
        when: datetime = "yesterday"  # type: ignore[assignment]

    with pytest.raises(SchemaError, match=r"field 'when' of Bad: the default 'yesterday'"):
        avro_schema(Bad)


class Reading(BaseModel):
    sensor_id: str
    temperature: float


class ReadingV2(BaseModel):
    sensor_id: str
    temperature: float
    unit: str = "C"
    at: datetime = datetime(2020, 1, 1, tzinfo=UTC)
    recorded: list[datetime] = [datetime(2021, 1, 1, tzinfo=UTC)]
    raw: bytes = b"\xfe"
    amount: Decimal = Field(Decimal("2.50"), max_digits=5, decimal_places=2)
    kind: Priority = Priority.HIGH
    leaf: Leaf = Leaf(name="default", weight=0.5)
    tags: list[str] = Field(default_factory=list)
    ident: uuid.UUID = Field(default_factory=uuid.uuid4)
    note: str | None = None


def test_defaults_apply_when_reading_old_data() -> None:
    old_avro = {
        "type": "record",
        "name": "Reading",
        "fields": [
            {"name": "sensor_id", "type": "string"},
            {"name": "temperature", "type": "double"},
        ],
    }
    # Rename the writer's record to match (records are matched by name).
    writer = Schema.of({**old_avro, "name": "ReadingV2"})
    new = Schema.of(ReadingV2)
    first = write_read(writer, {"sensor_id": "s1", "temperature": 21.5}, new)
    second = write_read(writer, {"sensor_id": "s2", "temperature": 1.0}, new)
    assert isinstance(first, ReadingV2)
    assert first.sensor_id == "s1" and first.temperature == 21.5
    assert first.unit == "C"
    assert first.at == datetime(2020, 1, 1, tzinfo=UTC)
    assert first.recorded == [datetime(2021, 1, 1, tzinfo=UTC)]
    assert first.raw == b"\xfe"
    assert first.amount == Decimal("2.50")
    assert first.kind is Priority.HIGH
    assert first.leaf == Leaf(name="default", weight=0.5)
    assert first.tags == []
    assert first.note is None
    # default_factory runs for each record, as it would in Python.
    assert first.ident != second.ident
    # Reading old data does not damage the schema's defaults for the next record.
    assert second.kind is Priority.HIGH and second.recorded == first.recorded


def test_old_data_without_nested_fields() -> None:
    class Tagged(BaseModel):
        priority: Priority

    class ParentV1(BaseModel):
        items: list[Leaf]

    class LeafV2(BaseModel):
        name: str
        weight: float
        tagged: Tagged = Tagged(priority=Priority.HIGH)

    LeafV2.__name__ = "Leaf"

    class ParentV2(BaseModel):
        items: list[LeafV2]

    ParentV2.__name__ = ParentV1.__name__ = "Parent"
    old = ParentV1(items=[Leaf(name="a", weight=1.0)])
    result = write_read(Schema.of(ParentV1), old, Schema.of(ParentV2))
    assert result.items[0].tagged.priority is Priority.HIGH
    again = write_read(Schema.of(ParentV1), old, Schema.of(ParentV2))
    assert again == result


# ----------------------------------------------------------------- round trips


def test_round_trip_everything() -> None:
    schema = Schema.of(Everything)
    record = everything()
    back = write_read(schema, record)
    assert back == record
    assert isinstance(back.choice, Leaf)
    assert isinstance(back.pet, Dog)  # Cat and Dog look alike; the union branch says which
    assert back.numbers == (1, 2, 3)
    assert back.frozen == frozenset({4, 5})


@pytest.mark.parametrize("choice", [0, 2**40, "text", "12", Leaf(name="l", weight=-1.0)], ids=repr)
def test_union_branches_survive(choice: Any) -> None:
    back = write_read(Schema.of(Everything), everything(choice=choice))
    assert back.choice == choice
    assert type(back.choice) is type(choice)


def test_int_and_float_union_keeps_the_type() -> None:
    class Num(BaseModel):
        value: float | int

    schema = Schema.of(Num)
    assert type(write_read(schema, Num(value=3)).value) is int
    assert type(write_read(schema, Num(value=3.0)).value) is float


def test_strict_model_round_trips() -> None:
    class Strict(BaseModel):
        model_config = ConfigDict(strict=True)
        kind: Priority
        values: tuple[int, ...]

    record = Strict(kind=Priority.HIGH, values=(1, 2))
    assert write_read(Schema.of(Strict), record) == record


def test_use_enum_values_model() -> None:
    class Values(BaseModel):
        model_config = ConfigDict(use_enum_values=True)
        priority: Priority
        kind: Kind

    record = Values(priority=Priority.HIGH, kind=Kind.beta)
    assert record.priority == 2
    assert write_read(Schema.of(Values), record) == record


utc_datetimes = st.datetimes(
    min_value=datetime(1900, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
)
leaves = st.builds(Leaf, name=st.text(max_size=5), weight=st.floats(allow_nan=False, width=64))
trees = st.recursive(
    st.builds(Tree, leaf=leaves),
    lambda children: st.builds(Tree, leaf=leaves, children=st.lists(children, max_size=2)),
    max_leaves=4,
)
longs = st.integers(min_value=-(2**63), max_value=2**63 - 1)
samples = st.builds(
    Everything,
    text=st.text(),
    number=longs,
    ratio=st.floats(allow_nan=False),
    flag=st.booleans(),
    blob=st.binary(),
    maybe=st.none() | longs,
    maybe_text=st.none() | st.text(max_size=5),
    choice=longs | st.text(max_size=5) | leaves,
    pet=st.none()
    | st.builds(Cat, name=st.text(max_size=3))
    | st.builds(Dog, name=st.text(max_size=3)),
    items=st.lists(leaves, max_size=3),
    numbers=st.lists(longs, max_size=3).map(tuple),
    labels=st.sets(st.text(max_size=3), max_size=3),
    frozen=st.frozensets(longs, max_size=3),
    weights=st.dictionaries(st.text(max_size=3), st.floats(allow_nan=False), max_size=3),
    leaves=st.dictionaries(st.text(max_size=3), leaves, max_size=2),
    kind=st.sampled_from(Kind),
    priority=st.sampled_from(Priority),
    shade=st.sampled_from(Shade),
    mode=st.sampled_from(["on", "off"]),
    at=utc_datetimes,
    day=st.dates(),
    clock=st.times(),
    ident=st.uuids(),
    amount=st.decimals(min_value=Decimal("-99999.999"), max_value=Decimal("99999.999"), places=3),
    tree=st.none() | trees,
    leaf=leaves,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(samples)
def test_round_trip_property(record: Everything) -> None:
    assert write_read(Schema.of(Everything), record) == record


# ------------------------------------------------------------------ Schema.of


RECORD_AVRO: dict[str, Any] = {
    "type": "record",
    "name": "Reading",
    "namespace": "sensors",
    "fields": [
        {"name": "sensor_id", "type": "string"},
        {"name": "temperature", "type": "double"},
    ],
}


def test_schema_of_avro_dict() -> None:
    schema = Schema.of(RECORD_AVRO)
    assert schema.model is None
    assert schema.name == "sensors.Reading"
    assert schema.avro == RECORD_AVRO
    assert schema.avro is not RECORD_AVRO  # a copy: later changes to the input do not leak in
    assert schema.describe() == "record sensors.Reading (Avro schema)"
    record = {"sensor_id": "a", "temperature": 1.5}
    assert schema.to_datum(record) is record
    assert write_read(schema, record) == record
    assert Schema.of(dict(RECORD_AVRO)) is schema


@pytest.mark.parametrize(
    ("source", "name", "value"),
    [
        ("string", "string", "hello"),
        ('"long"', "long", 42),
        (["null", "string"], "union", None),
        ({"type": "array", "items": "int"}, "array", [1, 2]),
        ({"type": "long", "logicalType": "timestamp-micros"}, "timestamp-micros", None),
    ],
)
def test_schema_of_other_avro_forms(source: Any, name: str, value: Any) -> None:
    schema = Schema.of(source)
    assert schema.name == name
    assert schema.describe() == f"{name} (Avro schema)"
    if value is not None:
        assert write_read(schema, value) == value


def test_schema_of_json_string_and_schema() -> None:
    import json

    schema = Schema.of(json.dumps(RECORD_AVRO))
    assert schema.name == "sensors.Reading"
    assert Schema.of(schema) is schema


@pytest.mark.parametrize(
    "source",
    [
        {"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]},
        {"type": "record", "name": "X"},
        {"type": "enum", "name": "E", "symbols": ["a", "a b"]},
        "not-a-type",
        "{not json",
    ],
)
def test_invalid_avro_schema(source: Any) -> None:
    with pytest.raises(SchemaError, match=r"not (a )?valid"):
        Schema.of(source)


def test_schema_of_rejects_other_things() -> None:
    class NotAModel:
        pass

    with pytest.raises(SchemaError, match="not a pydantic model"):
        Schema.of(NotAModel)  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="not a schema"):
        Schema.of(42)  # type: ignore[arg-type]


def test_describe_model() -> None:
    assert Schema.of(Reading).describe() == f"Reading (pydantic model {__name__}.Reading)"


# ----------------------------------------------------------------- converters


def test_flat_model_datum_is_its_dict() -> None:
    record = Reading(sensor_id="s", temperature=1.0)
    assert Schema.of(Reading).to_datum(record) is record.__dict__


def test_to_datum_accepts_a_dict_of_fields() -> None:
    datum = Schema.of(Reading).to_datum({"sensor_id": "s", "temperature": "2.5"})
    assert datum == {"sensor_id": "s", "temperature": 2.5}


def test_to_datum_rejects_another_model() -> None:
    with pytest.raises(TypeError, match="expected a Reading"):
        Schema.of(Reading).to_datum(Leaf(name="x", weight=1))


def test_from_datum_validates() -> None:
    schema = Schema.of(Reading)
    assert schema.from_datum({"sensor_id": "s", "temperature": 1.0}) == Reading(
        sensor_id="s", temperature=1.0
    )
    with pytest.raises(ValidationError):
        schema.from_datum({"sensor_id": "s", "temperature": "hot"})


def test_from_datum_validates_field_constraints() -> None:
    class Bounded(BaseModel):
        level: int = Field(ge=0, le=10)

    with pytest.raises(ValidationError, match="level"):
        write_read(Schema.of({"type": "record", "name": "Bounded", "fields": [
            {"name": "level", "type": "long"}]}), {"level": 11}, Schema.of(Bounded))  # fmt: skip


# ------------------------------------------------------------------- validate


def test_validate_model() -> None:
    schema = Schema.of(Reading)
    record = Reading(sensor_id="s", temperature=1.0)
    assert schema.validate(record) is record
    assert schema.validate({"sensor_id": "s", "temperature": 1}) == record
    with pytest.raises(SchemaError, match="field 'temperature'"):
        schema.validate({"sensor_id": "s", "temperature": "hot"})
    with pytest.raises(SchemaError, match=r"expected a Reading .* got Leaf"):
        schema.validate(Leaf(name="x", weight=1))


def test_validate_avro_dict() -> None:
    schema = Schema.of(RECORD_AVRO)
    record = {"sensor_id": "s", "temperature": 1.0}
    assert schema.validate(record) is record
    with pytest.raises(SchemaError, match=r"field 'temperature' is 'hot' \(str\), expected double"):
        schema.validate({"sensor_id": "s", "temperature": "hot"})
    with pytest.raises(SchemaError, match="field 'sensor_id'"):
        schema.validate({"temperature": 1.0})
    # A model on an Avro-dict port is checked as the dict of its fields.
    assert schema.validate(Reading(sensor_id="s", temperature=2.0)) == {
        "sensor_id": "s",
        "temperature": 2.0,
    }


def test_validate_primitive_schema() -> None:
    schema = Schema.of("long")
    assert schema.validate(5) == 5
    with pytest.raises(SchemaError, match="expected long"):
        schema.validate("five")


def test_model_port_schema_is_cached_per_class() -> None:
    factories: list[Callable[[], Schema]] = [lambda: Schema.of(Leaf), lambda: Schema.of(Leaf)]
    first, second = (make() for make in factories)
    assert first is second


def test_model_without_namespace_cannot_be_named_inside_a_namespace() -> None:
    class Inner(BaseModel):
        x: int

    class Other(BaseModel):
        __avro_namespace__ = "elsewhere"
        inner: Inner

    class Root(BaseModel):
        inner: Inner
        other: Other

    with pytest.raises(SchemaError, match=r"'Inner' has no Avro namespace .*__avro_namespace__"):
        avro_schema(Root)


def test_model_without_namespace_defined_inside_a_namespace() -> None:
    class Inner(BaseModel):
        x: int

    class Other(BaseModel):
        __avro_namespace__ = "elsewhere"
        inner: Inner

    class Root(BaseModel):
        other: Other
        inner: Inner

    avro = avro_schema(Root)
    assert field_of(avro, "other")["type"]["fields"][0]["type"]["namespace"] == ""
    assert field_of(avro, "inner")["type"] == "Inner"
    record = Root(other=Other(inner=Inner(x=1)), inner=Inner(x=2))
    assert write_read(Schema.of(Root), record) == record
