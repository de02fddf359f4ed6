"""The files' fast paths give what the slow ones give (hypothesis).

FileSource reads a model's JSON Lines through pydantic-core's JSON validation: the same
records as ``json.loads`` and the model's validation (the path it takes for lines that do
not pass, which says why), on arbitrary JSON values. FileSink writes a model's lines
with its serializer: the same text as ``model_dump_json(by_alias=True)``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field

from runner.testkit import run_streamlet
from streamlets.errors import SchemaError
from streamlets.library import FileSource
from streamlets.library.files import _json_line, _json_validator, _json_writer
from streamlets.schema import Schema


class Reading(BaseModel):
    sensor: str
    value: float
    count: int = 0
    ok: bool | None = None
    at: datetime | None = None
    tags: list[str] = []


class Level(StrEnum):
    low = "low"
    high = "high"


SCHEMA = Schema.of(Reading)
FAST = _json_validator(SCHEMA)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(["1", "2.5", "true", "2024-05-01T12:00:00Z", "2024-05-01", "1e3", ""]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3))
lines = st.fixed_dictionaries(
    {},
    optional={
        "sensor": values,
        "value": values,
        "count": values,
        "ok": values,
        "at": values,
        "tags": values,
        "extra": values,
    },
)


def slow(line: str) -> Any:
    try:
        return SCHEMA.validate(json.loads(line))
    except (ValueError, SchemaError):
        return None


def fast(line: str) -> Any:
    assert FAST is not None
    try:
        return FAST(line)
    except ValueError:
        return None


@settings(max_examples=400, deadline=None)
@given(lines)
def test_the_fast_path_takes_exactly_the_records_the_slow_path_takes(
    record: dict[str, Any],
) -> None:
    line = json.dumps(record) + "\n"
    assert fast(line) == slow(line)


def test_a_file_of_good_and_bad_lines_reads_as_before(tmp_path: Path) -> None:
    good = [
        {"sensor": "a", "value": 1, "count": "3", "at": "2024-05-01T12:00:00Z"},
        {"sensor": "b", "value": 2.5},
    ]
    bad = [{"sensor": "c", "value": "x"}, {"value": 1}]
    path = tmp_path / "readings.jsonl"
    text = [
        json.dumps(good[0]),
        json.dumps(bad[0]),
        "not json",
        json.dumps(good[1]),
        json.dumps(bad[1]),
    ]
    path.write_text("\n".join(text) + "\n")
    result = run_streamlet(FileSource, config={"path": path, "schema": f"{__name__}:Reading"})
    assert result.outputs["out"] == [Reading.model_validate(r) for r in good]
    errors = [(d.error_class, d.original.value) for d in result.dead_letters]
    assert errors == [
        ("SchemaError", text[1].encode()),
        ("JSONDecodeError", b"not json"),
        ("SchemaError", text[4].encode()),
    ]
    assert f"{path}:2" in result.dead_letters[0].error_message
    assert "'value'" in result.dead_letters[0].error_message


class Inner(BaseModel):
    code: str
    weight: float | None = None


class Written(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    ident: int = Field(alias="id")
    at: datetime
    note: str | None = None
    raw: bytes = b""
    inner: Inner | None = None
    tags: list[str] = []
    level: Level = Level.low


class Custom(Written):
    def model_dump_json(self, **kwargs: Any) -> str:
        return '{"custom": true}'


written = st.builds(
    Written,
    ident=st.integers(-(2**63), 2**63 - 1),
    at=st.datetimes(timezones=st.sampled_from([None, UTC])),
    note=st.one_of(st.none(), st.text(max_size=10)),
    raw=st.binary(max_size=6).map(lambda b: b.hex().encode()),
    inner=st.one_of(st.none(), st.builds(Inner, code=st.text(max_size=4))),
    tags=st.lists(st.text(max_size=3), max_size=3),
    level=st.sampled_from(Level),
)


@settings(max_examples=300, deadline=None)
@given(written)
def test_the_sink_writes_what_model_dump_json_writes(record: Written) -> None:
    line = _json_writer(Schema.of(Written))
    assert line(record) == record.model_dump_json(by_alias=True) + "\n" == _json_line(record)


def test_the_sink_keeps_a_models_own_model_dump_json() -> None:
    record = Custom(id=1, at=datetime(2024, 1, 1))
    assert _json_writer(Schema.of(Custom))(record) == '{"custom": true}\n'
    assert _json_writer(Schema.of(Written))(record) == '{"custom": true}\n'  # a subclass
