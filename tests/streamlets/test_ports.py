"""Port options: an outlet's key, a port's event-time field, optional inlets, and the helpers
the runners call per record (``Outlet.key_of``, ``Port.timestamp_of``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from enum import Enum, StrEnum
from typing import Any
from uuid import UUID

import pytest
from pydantic import BaseModel

from streamlets import (
    EncodeError,
    FromConfig,
    Inlet,
    Outlet,
    RecordValidationError,
    Streamlet,
    StreamletDefinitionError,
)

AVRO = {
    "type": "record",
    "name": "Event",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}


class Color(Enum):
    RED = "red"


class Size(StrEnum):
    BIG = "big"


class Reading(BaseModel):
    sensor_id: str
    temperature: float
    at: datetime | None = None
    at_ms: int = 0
    raw: bytes = b""
    number: int = 0
    color: Color = Color.RED
    size: Size = Size.BIG
    uuid: UUID | None = None


class Keyed(Streamlet):
    readings = Inlet(Reading, timestamp="at")
    control = Inlet(Reading, optional=True)
    by_field = Outlet(Reading, key="sensor_id", timestamp="at_ms")
    by_function = Outlet(Reading, key=lambda r: f"{r.sensor_id}/{r.number}")
    events = Outlet(AVRO, key="id", timestamp="at")
    plain = Outlet(Reading)

    def process(self, reading: Reading) -> None:
        return None


def reading(**values: Any) -> Reading:
    return Reading(**{"sensor_id": "sensor-7", "temperature": 1.0, **values})


def test_options_are_read_only_attributes_with_defaults() -> None:
    assert Keyed.by_field.key == "sensor_id"
    assert Keyed.by_field.timestamp == "at_ms"
    assert callable(Keyed.by_function.key)
    assert Keyed.plain.key is None and Keyed.plain.timestamp is None
    assert Keyed.readings.timestamp == "at"
    assert Keyed.readings.optional is False
    assert Keyed.control.optional is True
    with pytest.raises(AttributeError):
        Keyed.by_field.key = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        Keyed.control.optional = False  # type: ignore[misc]
    with pytest.raises(AttributeError):
        Keyed.readings.timestamp = "other"  # type: ignore[misc]


def test_existing_arguments_and_behaviour_are_kept() -> None:
    port = Outlet(Reading, description="the readings", key="sensor_id")
    assert port.description == "the readings"
    assert port.model is Reading
    assert port.schema.name == "Reading"
    inlet = Inlet(FromConfig("schema"), optional=True, timestamp="at")
    assert inlet.configured and inlet.optional
    assert list(Keyed.inlets()) == ["readings", "control"]
    assert list(Keyed.outlets()) == ["by_field", "by_function", "events", "plain"]


def test_key_from_a_string_field_is_utf8() -> None:
    assert Keyed.by_field.key_of(reading(sensor_id="capteur-é")) == "capteur-é".encode()


def test_key_from_a_function() -> None:
    assert Keyed.by_function.key_of(reading(number=3)) == b"sensor-7/3"
    raw = Outlet(Reading, key=lambda r: r.raw)
    assert raw.key_of(reading(raw=b"\x00\xff")) == b"\x00\xff"
    nothing = Outlet(Reading, key=lambda r: None)
    assert nothing.key_of(reading()) is None


@pytest.mark.parametrize(
    ("field", "value", "key"),
    [
        ("raw", b"\x00\x01", b"\x00\x01"),
        ("number", 42, b"42"),
        ("number", -1, b"-1"),
        ("color", Color.RED, b"red"),
        ("size", Size.BIG, b"big"),
        ("uuid", UUID(int=1), b"00000000-0000-0000-0000-000000000001"),
        ("uuid", None, None),
    ],
)
def test_key_values_become_bytes(field: str, value: Any, key: bytes | None) -> None:
    assert Outlet(Reading, key=field).key_of(reading(**{field: value})) == key


def test_key_of_an_avro_dict_record() -> None:
    assert Keyed.events.key_of({"id": 12, "at": 0}) == b"12"
    assert Keyed.events.key_of({"at": 0}) is None  # a dict without the field has no key


def test_an_outlet_without_a_key_gives_none() -> None:
    assert Keyed.plain.key_of(reading()) is None


def test_a_key_field_the_record_lacks_is_an_encode_error() -> None:
    port = Outlet(Reading, key="nope")
    with pytest.raises(EncodeError, match="key='nope' names no field"):
        port.key_of(reading())


def test_timestamp_from_an_aware_datetime() -> None:
    at = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    expected = int(datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC).timestamp() * 1000)
    assert Keyed.readings.timestamp_of(reading(at=at)) == expected


def test_a_naive_datetime_is_utc() -> None:
    naive = datetime(2024, 5, 1, 10, 0, 0, 999999)
    aware = naive.replace(tzinfo=UTC)
    assert Keyed.readings.timestamp_of(reading(at=naive)) == 1714557600999
    assert Keyed.readings.timestamp_of(reading(at=aware)) == 1714557600999


def test_timestamp_from_epoch_milliseconds() -> None:
    assert Keyed.by_field.timestamp_of(reading(at_ms=1714557600999)) == 1714557600999
    assert Keyed.events.timestamp_of({"id": 1, "at": 0}) == 0


def test_timestamp_none_or_undeclared_is_none() -> None:
    assert Keyed.readings.timestamp_of(reading(at=None)) is None
    assert Keyed.plain.timestamp_of(reading()) is None
    assert Keyed.control.timestamp_of(reading()) is None


def test_a_timestamp_before_1970_or_of_another_type_is_an_error_of_the_ports_stage() -> None:
    with pytest.raises(EncodeError, match="before 1970"):
        Keyed.by_field.timestamp_of(reading(at_ms=-5))
    with pytest.raises(RecordValidationError, match="must hold a datetime or an integer"):
        Keyed.readings.timestamp_of({"at": "yesterday"})  # type: ignore[arg-type]
    with pytest.raises(EncodeError, match="must hold a datetime or an integer"):
        Keyed.events.timestamp_of({"id": 1, "at": True})


@pytest.mark.parametrize("bad", ["", 42, b"id"])
def test_a_key_or_timestamp_that_is_no_field_name_is_refused_where_it_is_declared(
    bad: Any,
) -> None:
    with pytest.raises(StreamletDefinitionError, match=r"Outlet\(key=\.\.\.\)"):
        Outlet(Reading, key=bad)
    with pytest.raises(StreamletDefinitionError, match=r"Inlet\(timestamp=\.\.\.\)"):
        Inlet(Reading, timestamp=bad)
    with pytest.raises(StreamletDefinitionError, match="optional"):
        Inlet(Reading, optional="yes")  # type: ignore[call-overload]
