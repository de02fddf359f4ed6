"""Topic codecs: Avro binary and JSON, round trips, schema resolution, errors."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from streamlets.codecs import CODEC_NAMES, AvroCodec, Codec, JsonCodec, codec_for
from streamlets.errors import (
    CodecError,
    DecodeError,
    EncodeError,
    RecordValidationError,
    StreamletsError,
)
from streamlets.schema import Schema


class Unit(StrEnum):
    celsius = "celsius"
    fahrenheit = "fahrenheit"


class Location(BaseModel):
    lat: float
    lon: float


class Reading(BaseModel):
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    sensor_id: str
    temperature: float
    at: datetime = datetime(2024, 1, 1, tzinfo=UTC)
    unit: Unit = Unit.celsius
    location: Location | None = None
    tags: list[str] = []
    raw: bytes = b""
    ident: uuid.UUID = uuid.UUID(int=0)
    amount: Decimal = Field(Decimal("0.00"), max_digits=6, decimal_places=2)
    day: date = date(2024, 1, 1)


class ReadingV2(BaseModel):
    """Reading with a field added (with a default) and one removed (raw, ident)."""

    sensor_id: str
    temperature: float
    at: datetime = datetime(2024, 1, 1, tzinfo=UTC)
    unit: Unit = Unit.celsius
    location: Location | None = None
    tags: list[str] = []
    amount: Decimal = Field(Decimal("0.00"), max_digits=6, decimal_places=2)
    day: date = date(2024, 1, 1)
    quality: float = 1.0


ReadingV2.__name__ = "Reading"  # same record name: a new version of the same type


class Measurement(BaseModel):
    """Reading renamed: it declares the old name as an alias."""

    __avro_aliases__ = ("Reading",)
    sensor_id: str
    temperature: float


class NeedsUnit(BaseModel):
    sensor_id: str
    unit_code: str  # required and absent from Reading: cannot read Reading data


def reading(**overrides: Any) -> Reading:
    values: dict[str, Any] = {
        "sensor_id": "s1",
        "temperature": 21.5,
        "at": datetime(2024, 5, 1, 12, 0, 0, 250, tzinfo=UTC),
        "unit": Unit.fahrenheit,
        "location": Location(lat=52.1, lon=4.3),
        "tags": ["roof", "north"],
        "raw": b"\x00\xff",
        "ident": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "amount": Decimal("12.34"),
        "day": date(2024, 2, 29),
    }
    values.update(overrides)
    return Reading(**values)


READING_AVRO = Schema.of(Reading).avro
READING_DICT = {
    "sensor_id": "s1",
    "temperature": 21.5,
    "at": datetime(2024, 5, 1, 12, 0, 0, 250, tzinfo=UTC),
    "unit": "fahrenheit",
    "location": {"lat": 52.1, "lon": 4.3},
    "tags": ["roof", "north"],
    "raw": b"\x00\xff",
    "ident": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "amount": Decimal("12.34"),
    "day": date(2024, 2, 29),
}


# ------------------------------------------------------------------ codec_for


def test_codec_names_and_lookup() -> None:
    assert CODEC_NAMES == ("avro", "json")
    schema = Schema.of(Reading)
    avro = codec_for("avro", schema)
    jsn = codec_for("json", schema)
    assert isinstance(avro, AvroCodec) and avro.name == "avro"
    assert isinstance(jsn, JsonCodec) and jsn.name == "json"
    assert isinstance(avro, Codec) and isinstance(jsn, Codec)
    assert avro.reader is schema  # reader defaults to writer


def test_unknown_codec_lists_the_names() -> None:
    with pytest.raises(CodecError, match=r"unknown codec 'protobuf'; use one of: avro, json"):
        codec_for("protobuf", Schema.of(Reading))


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", CODEC_NAMES)
def test_model_round_trip(name: str) -> None:
    codec = codec_for(name, Schema.of(Reading))
    record = reading()
    data = codec.encode(record)
    assert isinstance(data, bytes)
    back = codec.decode(data)
    assert isinstance(back, Reading)
    assert back == record


@pytest.mark.parametrize("name", CODEC_NAMES)
def test_dict_round_trip(name: str) -> None:
    codec = codec_for(name, Schema.of(READING_AVRO))
    back = codec.decode(codec.encode(READING_DICT))
    assert back == READING_DICT


@pytest.mark.parametrize("name", CODEC_NAMES)
def test_primitive_schema_round_trip(name: str) -> None:
    codec = codec_for(name, Schema.of("string"))
    assert codec.decode(codec.encode("héllo")) == "héllo"


def test_avro_bytes_match_fastavro() -> None:
    import io

    import fastavro

    schema = Schema.of(READING_AVRO)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(READING_AVRO), READING_DICT)
    assert AvroCodec(schema).encode(READING_DICT) == buf.getvalue()
    # The model and its Avro-dict twin write the same bytes.
    assert AvroCodec(Schema.of(Reading)).encode(reading()) == buf.getvalue()


def test_avro_model_and_dict_ports_interoperate() -> None:
    model, plain = Schema.of(Reading), Schema.of(READING_AVRO)
    assert AvroCodec(plain, model).decode(AvroCodec(model).encode(reading())) == reading()
    assert AvroCodec(model, plain).decode(AvroCodec(model).encode(reading())) == READING_DICT


def test_json_model_and_dict_ports_interoperate() -> None:
    model, plain = Schema.of(Reading), Schema.of(READING_AVRO)
    from_model = JsonCodec(model, plain).decode(JsonCodec(model).encode(reading()))
    assert from_model == READING_DICT
    from_dict = JsonCodec(plain, model).decode(JsonCodec(plain).encode(READING_DICT))
    assert from_dict == reading()


def test_json_is_natural_json() -> None:
    text = JsonCodec(Schema.of(READING_AVRO)).encode(READING_DICT)
    value = json.loads(text)
    assert value["unit"] == "fahrenheit"
    assert value["location"] == {"lat": 52.1, "lon": 4.3}  # no Avro union wrapper
    assert value["raw"] == "AP8="  # base64
    assert datetime.fromisoformat(value["at"]) == READING_DICT["at"]
    assert value["ident"] == "12345678-1234-5678-1234-567812345678"
    assert value["amount"] == "12.34"
    assert value["day"] == "2024-02-29"


def test_json_model_uses_aliases() -> None:
    class Aliased(BaseModel):
        sensor_id: str = Field(alias="sensorId")

    codec = JsonCodec(Schema.of(Aliased))
    data = codec.encode(Aliased(sensorId="x"))
    assert json.loads(data) == {"sensorId": "x"}
    assert codec.decode(data) == Aliased(sensorId="x")


def test_json_dict_decoding_fills_defaults_and_drops_unknown_fields() -> None:
    codec = JsonCodec(Schema.of(READING_AVRO))
    back = codec.decode(b'{"sensor_id": "s", "temperature": 3, "extra": true}')
    assert back["sensor_id"] == "s"
    assert back["unit"] == "celsius"
    assert back["at"] == datetime(2024, 1, 1, tzinfo=UTC)
    assert back["raw"] == b""
    assert back["amount"] == Decimal("0.00")
    assert back["day"] == date(2024, 1, 1)
    assert back["location"] is None
    assert "extra" not in back


def test_json_dict_decoding_accepts_epoch_timestamps_and_offsets() -> None:
    codec = JsonCodec(Schema.of(READING_AVRO))
    epoch = codec.decode(b'{"sensor_id": "s", "temperature": 1, "at": 1000000}')
    assert epoch["at"] == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)
    offset = codec.decode(
        b'{"sensor_id": "s", "temperature": 1, "at": "2024-01-01T02:00:00+02:00"}'
    )
    assert offset["at"] == datetime(2024, 1, 1, tzinfo=UTC)
    assert offset["at"].tzinfo is UTC


def test_json_dict_union_branches() -> None:
    schema = Schema.of(
        {
            "type": "record",
            "name": "U",
            "fields": [
                {
                    "name": "v",
                    "type": ["null", "long", "string", {"type": "array", "items": "bytes"}],
                }
            ],
        }
    )
    codec = JsonCodec(schema)
    for value in (None, 5, "five", [b"\x01", b""]):
        assert codec.decode(codec.encode({"v": value})) == {"v": value}


@settings(max_examples=60, deadline=None)
@given(
    sensor_id=st.text(),
    temperature=st.floats(allow_nan=False, allow_infinity=False),
    at=st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-3))]),
    ),
    tags=st.lists(st.text(max_size=4), max_size=3),
    raw=st.binary(max_size=8),
    location=st.none() | st.builds(Location, lat=st.floats(-90, 90), lon=st.floats(-180, 180)),
)
def test_round_trip_property(
    sensor_id: str,
    temperature: float,
    at: datetime,
    tags: list[str],
    raw: bytes,
    location: Location | None,
) -> None:
    record = Reading(
        sensor_id=sensor_id, temperature=temperature, at=at, tags=tags, raw=raw, location=location
    )
    for name in CODEC_NAMES:
        codec = codec_for(name, Schema.of(Reading))
        assert codec.decode(codec.encode(record)) == record


# ----------------------------------------------------------------- resolution


def test_avro_resolves_writer_to_reader() -> None:
    codec = codec_for("avro", Schema.of(Reading), Schema.of(ReadingV2))
    back = codec.decode(codec_for("avro", Schema.of(Reading)).encode(reading()))
    assert isinstance(back, ReadingV2)
    assert back.quality == 1.0  # added field: the reader's default
    assert back.sensor_id == "s1" and back.unit is Unit.fahrenheit
    assert back.location == Location(lat=52.1, lon=4.3)
    assert not hasattr(back, "raw")  # removed field: ignored


def test_avro_resolution_promotes_numbers() -> None:
    writer = Schema.of({"type": "record", "name": "N", "fields": [{"name": "n", "type": "int"}]})
    reader = Schema.of({"type": "record", "name": "N", "fields": [{"name": "n", "type": "double"}]})
    data = AvroCodec(writer).encode({"n": 7})
    assert AvroCodec(writer, reader).decode(data) == {"n": 7.0}


def test_avro_renamed_model_reads_old_name_through_alias() -> None:
    data = AvroCodec(Schema.of(Reading)).encode(reading())
    back = AvroCodec(Schema.of(Reading), Schema.of(Measurement)).decode(data)
    assert back == Measurement(sensor_id="s1", temperature=21.5)


def test_avro_incompatible_reader_is_a_validation_error() -> None:
    data = AvroCodec(Schema.of(Reading)).encode(reading())
    codec = AvroCodec(Schema.of(Reading), Schema.of(NeedsUnit))
    with pytest.raises(RecordValidationError, match=r"NeedsUnit .*written as Reading") as info:
        codec.decode(data)
    assert info.value.__cause__ is not None


def test_json_decodes_with_the_reader_schema() -> None:
    data = JsonCodec(Schema.of(Reading)).encode(reading())
    back = JsonCodec(Schema.of(Reading), Schema.of(ReadingV2)).decode(data)
    assert isinstance(back, ReadingV2) and back.quality == 1.0


# --------------------------------------------------------------------- errors


def test_decode_validation_and_encode_errors_are_distinct_codec_errors() -> None:
    kinds = (DecodeError, RecordValidationError, EncodeError)
    for kind in kinds:
        assert issubclass(kind, CodecError) and issubclass(kind, StreamletsError)
        assert [other for other in kinds if issubclass(kind, other)] == [kind]


@pytest.mark.parametrize("cut", [1, 5, 20])
def test_avro_truncated_bytes(cut: int) -> None:
    codec = AvroCodec(Schema.of(Reading))
    data = codec.encode(reading())
    with pytest.raises(DecodeError, match=r"cannot decode Avro bytes as Reading") as info:
        codec.decode(data[:-cut])
    assert info.value.__cause__ is not None


def test_avro_garbage_bytes() -> None:
    codec = AvroCodec(Schema.of(READING_AVRO))
    with pytest.raises(DecodeError, match=r"record Reading \(Avro schema\)"):
        codec.decode(b"\xff\xfe\xfd garbage \x00\x01" * 3)
    with pytest.raises(DecodeError):
        codec.decode(b"")


def test_avro_trailing_bytes_are_an_error() -> None:
    codec = AvroCodec(Schema.of("long"))
    data = codec.encode(300)
    assert codec.decode(data) == 300
    with pytest.raises(DecodeError, match="2 bytes left over"):
        codec.decode(data + b"\x00\x00")


def test_avro_data_that_fails_model_validation() -> None:
    class Bounded(BaseModel):
        level: int = Field(le=10)

    writer = Schema.of(
        {"type": "record", "name": "Bounded", "fields": [{"name": "level", "type": "long"}]}
    )
    data = AvroCodec(writer).encode({"level": 11})
    with pytest.raises(RecordValidationError, match=r"field 'level'") as info:
        AvroCodec(writer, Schema.of(Bounded)).decode(data)
    assert isinstance(info.value.__cause__, ValidationError)


def test_avro_enum_symbol_the_reader_does_not_know_is_a_validation_error() -> None:
    def level(*symbols: str) -> Schema:
        enum = {"type": "enum", "name": "Level", "symbols": list(symbols)}
        return Schema.of({"type": "record", "name": "R", "fields": [{"name": "l", "type": enum}]})

    writer, reader = level("low", "high", "extreme"), level("low", "high")
    codec = AvroCodec(writer, reader)
    assert codec.decode(AvroCodec(writer).encode({"l": "high"})) == {"l": "high"}
    with pytest.raises(RecordValidationError, match="extreme"):
        codec.decode(AvroCodec(writer).encode({"l": "extreme"}))


class ValidReading(BaseModel):
    """A model whose name holds "Valid": its decode errors are decode errors all the same."""

    sensor_id: str
    level: int = Field(le=10)


READING_LEVEL: dict[str, Any] = {
    "type": "record",
    "name": "ValidReading",
    "fields": [{"name": "sensor_id", "type": "string"}, {"name": "level", "type": "long"}],
}


@pytest.mark.parametrize("name", CODEC_NAMES)
def test_garbage_for_a_model_named_valid_is_a_decode_error(name: str) -> None:
    codec = codec_for(name, Schema.of(ValidReading))
    with pytest.raises(DecodeError, match="ValidReading"):
        codec.decode(b"\xff\xfe\xfd garbage")
    with pytest.raises(RecordValidationError, match=r"field 'level'"):
        codec.decode(
            codec_for(name, Schema.of(READING_LEVEL)).encode({"sensor_id": "s", "level": 11})
        )


@pytest.mark.parametrize(
    "record",
    [
        {"sensor_id": "s"},  # missing field
        {"sensor_id": 5, "temperature": 1.0},  # wrong type
        {"sensor_id": "s", "temperature": "hot"},
        "not a record",
    ],
    ids=["missing", "int-for-string", "str-for-double", "str"],
)
def test_avro_dict_record_that_does_not_fit(record: Any) -> None:
    codec = AvroCodec(Schema.of(READING_AVRO))
    with pytest.raises(
        EncodeError, match=r"cannot encode .* as record Reading \(Avro schema\)"
    ) as info:
        codec.encode(record)
    assert info.value.__cause__ is not None
    assert isinstance(info.value, StreamletsError)


def test_avro_model_codec_rejects_another_model() -> None:
    codec = AvroCodec(Schema.of(Reading))
    with pytest.raises(EncodeError, match=r"cannot encode Location as Reading.*expected a Reading"):
        codec.encode(Location(lat=1, lon=2))


def test_avro_model_codec_validates_dicts() -> None:
    codec = AvroCodec(Schema.of(Reading))
    assert codec.decode(codec.encode({"sensor_id": "s", "temperature": 1})) == Reading(
        sensor_id="s", temperature=1.0
    )
    with pytest.raises(EncodeError, match="field 'temperature'"):
        codec.encode({"sensor_id": "s", "temperature": "hot"})


def test_avro_model_on_dict_port_is_written_as_its_fields() -> None:
    codec = AvroCodec(Schema.of(READING_AVRO))
    assert codec.decode(codec.encode(reading())) == READING_DICT


def test_json_model_errors_name_the_field() -> None:
    codec = JsonCodec(Schema.of(Reading))
    with pytest.raises(RecordValidationError, match=r"Reading .*field 'temperature'") as info:
        codec.decode(b'{"sensor_id": "s", "temperature": "hot"}')
    assert isinstance(info.value.__cause__, ValidationError)
    with pytest.raises(RecordValidationError, match=r"field 'location.lat'"):
        codec.decode(b'{"sensor_id": "s", "temperature": 1, "location": {"lon": 1}}')
    with pytest.raises(RecordValidationError, match=r"field 'sensor_id': Field required"):
        codec.decode(b'{"temperature": 1}')
    with pytest.raises(RecordValidationError, match="Input should be an object"):
        codec.decode(b'"a string is JSON too"')


def test_json_dict_errors_name_the_field() -> None:
    codec = JsonCodec(Schema.of(READING_AVRO))
    with pytest.raises(RecordValidationError, match=r"field 'temperature' is 'hot'"):
        codec.decode(b'{"sensor_id": "s", "temperature": "hot"}')
    with pytest.raises(RecordValidationError, match=r"field 'sensor_id'"):
        codec.decode(b'{"temperature": 1}')
    with pytest.raises(EncodeError, match=r"field 'temperature'"):
        codec.encode({"sensor_id": "s", "temperature": "hot"})


@pytest.mark.parametrize("data", [b"", b"{not json", b"\xff\xfe", b'{"sensor_id": "s"'])
@pytest.mark.parametrize("schema", [Reading, READING_AVRO], ids=["model", "dict"])
def test_json_garbage(data: bytes, schema: Any) -> None:
    with pytest.raises(DecodeError, match="cannot decode JSON") as info:
        JsonCodec(Schema.of(schema)).decode(data)
    assert info.value.__cause__ is not None


def test_json_bad_base64_for_bytes() -> None:
    codec = JsonCodec(Schema.of(READING_AVRO))
    with pytest.raises(RecordValidationError, match="not base64"):
        codec.decode(b'{"sensor_id": "s", "temperature": 1, "raw": "not base64!"}')


def test_json_model_codec_rejects_another_model() -> None:
    with pytest.raises(EncodeError, match="expected a Reading"):
        JsonCodec(Schema.of(Reading)).encode(Location(lat=1, lon=2))


class Cat(BaseModel):
    name: str


class Dog(BaseModel):
    name: str


class Pet(BaseModel):
    pet: Cat | Dog
    friends: list[Cat | Dog] = []


class PetV2(BaseModel):
    pet: Cat | Dog
    friends: list[Cat | Dog] = []
    age: int = 0


PetV2.__name__ = "Pet"


@pytest.mark.parametrize("reader", [Pet, PetV2])
def test_avro_union_of_look_alike_models_keeps_the_branch(reader: type[BaseModel]) -> None:
    # Cat and Dog have the same fields: only the Avro union branch tells them apart.
    record = Pet(pet=Dog(name="rex"), friends=[Cat(name="tom"), Dog(name="fido")])
    data = AvroCodec(Schema.of(Pet)).encode(record)
    back = AvroCodec(Schema.of(Pet), Schema.of(reader)).decode(data)
    assert isinstance(back, reader)
    assert type(back.pet) is Dog  # type: ignore[attr-defined]
    assert [type(f) for f in back.friends] == [Cat, Dog]  # type: ignore[attr-defined]


# ------------------------------------------------------- fastavro entry points


def _public_only(codec: AvroCodec) -> AvroCodec:
    """``codec`` made to call fastavro's public schemaless_writer/reader."""
    codec._write_named = None
    codec._read_named = None
    return codec


def test_the_avro_codec_calls_fastavros_direct_entry_points_here() -> None:
    # Else the comparisons below would compare the public functions with themselves.
    codec = AvroCodec(Schema.of(Reading))
    assert codec._write_named is not None and codec._read_named is not None


@pytest.mark.parametrize(
    ("writer", "reader", "record"),
    [
        (Reading, Reading, reading()),
        (Reading, ReadingV2, reading(location=None, tags=[])),
        (Pet, Pet, Pet(pet=Dog(name="rex"), friends=[Cat(name="tom"), Dog(name="fido")])),
        (Pet, PetV2, Pet(pet=Cat(name="tom"))),
        (Reading, Measurement, reading()),
    ],
)
def test_direct_and_public_fastavro_calls_give_the_same_bytes_and_records(
    writer: type[BaseModel], reader: type[BaseModel], record: BaseModel
) -> None:
    direct = AvroCodec(Schema.of(writer), Schema.of(reader))
    public = _public_only(AvroCodec(Schema.of(writer), Schema.of(reader)))
    data = direct.encode(record)
    assert data == public.encode(record)
    back = direct.decode(data)
    assert back == public.decode(data)
    assert type(back) is type(public.decode(data))


def test_direct_and_public_fastavro_calls_fail_alike() -> None:
    direct, public = AvroCodec(Schema.of(Reading)), _public_only(AvroCodec(Schema.of(Reading)))
    data = direct.encode(reading())
    for broken in (data[:5], data + b"\x00", b"\xff" * 3):
        errors = []
        for codec in (direct, public):
            with pytest.raises(CodecError) as caught:
                codec.decode(broken)
            errors.append((type(caught.value), str(caught.value)))
        assert errors[0] == errors[1]
    dict_codecs = (
        AvroCodec(Schema.of(READING_AVRO)),
        _public_only(AvroCodec(Schema.of(READING_AVRO))),
    )
    for codec in dict_codecs:
        with pytest.raises(EncodeError, match="sensor_id"):
            codec.encode({**READING_DICT, "sensor_id": 5})


@settings(max_examples=60, deadline=None)
@given(
    sensor_id=st.text(),
    temperature=st.floats(allow_nan=False, allow_infinity=False),
    tags=st.lists(st.text(max_size=4), max_size=3),
    raw=st.binary(max_size=8),
    location=st.none() | st.builds(Location, lat=st.floats(-90, 90), lon=st.floats(-180, 180)),
)
def test_direct_and_public_fastavro_calls_agree_property(
    sensor_id: str, temperature: float, tags: list[str], raw: bytes, location: Location | None
) -> None:
    record = Reading(
        sensor_id=sensor_id, temperature=temperature, tags=tags, raw=raw, location=location
    )
    for schema in (Schema.of(Reading), Schema.of(READING_AVRO)):
        datum = record if schema.model is not None else record.model_dump()
        direct, public = AvroCodec(schema), _public_only(AvroCodec(schema))
        data = direct.encode(datum)
        assert data == public.encode(datum)
        assert direct.decode(data) == public.decode(data)
