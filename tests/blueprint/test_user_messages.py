"""Messages a user can follow: the names and lines of the user's own code and blueprint,
not the framework's internals."""

from __future__ import annotations

import enum
import logging
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import BaseModel

from blueprint import verify
from streamlets.codecs import codec_for
from streamlets.schema import Schema

Write = Callable[..., Path]

CONSOLE = """
name: console
streamlets:
  gen: {class: streamlets.library:GeneratorSource, config: {count: 3}}
  print: {class: streamlets.library:ConsoleSink}
topics:
  t: {producers: [gen.out], consumers: [print.records]}
"""


def _messages(path: Path) -> list[str]:
    return [p.message for p in verify(path).problems if p.is_error]


def test_a_port_without_its_schema_names_the_documented_key(tmp_path: Path) -> None:
    path = tmp_path / "blueprint.yaml"
    path.write_text(textwrap.dedent(CONSOLE))
    (message,) = _messages(path)
    assert "takes its schema from the config key 'schema', which is not set" in message
    assert "record_schema" not in message


def test_a_syntax_error_in_the_users_module_is_reported_at_its_line(write_blueprint: Write) -> None:
    module = "from streamlets import Streamlet\n\n\ndef broken(:\n    pass\n"
    path = write_blueprint(
        """
        name: app
        streamlets:
          s: {class: sample_app:Source}
          f:
            class: streamlets.library:FileSource
            config: {path: x.jsonl, schema: sample_app:Reading}
        """,
        module=module,
    )
    messages = _messages(path)
    assert any(
        "SyntaxError" in m and f"(at {path.parent / 'sample_app.py'}:4)" in m for m in messages
    ), messages
    # Also where a config value imports the module (a library streamlet's schema).
    assert sum("(at " in m and "sample_app.py:4" in m for m in messages) == 2, messages
    assert not any("classes.py" in m or "verify.py" in m for m in messages), messages


def test_an_error_raised_while_importing_names_the_users_line(write_blueprint: Write) -> None:
    module = "import json\n\nSETTINGS = json.loads('{')\n"
    path = write_blueprint(
        "name: app\nstreamlets:\n  s: {class: sample_app:Source}\n", module=module
    )
    (message,) = _messages(path)
    assert "JSONDecodeError" in message and "sample_app.py:3)" in message


def test_a_union_config_value_is_one_problem_without_pydantic_tags(write_blueprint: Write) -> None:
    path = write_blueprint(
        """
        name: app
        streamlets:
          f:
            class: streamlets.library:FileSource
            config: {path: x.jsonl, schema: 42}
        """
    )
    (message,) = _messages(path)
    assert message.startswith("streamlet 'f': config 'schema': ")
    assert "[" not in message.split(":", 2)[1]  # no 'function-before[import_string(), ...]'


class Colour(enum.Enum):
    RED = "RED"
    GREEN = "GREEN"
    BLUE = "BLUE"


class Paint(BaseModel):
    colour: Colour


class NewColour(enum.Enum):
    __avro_aliases__ = ("Colour",)
    RED = "RED"
    OTHER = "OTHER"
    __avro_default__ = OTHER  # the member's value here: what unknown symbols read as


class NewPaint(BaseModel):
    __avro_aliases__ = ("Paint",)
    colour: NewColour


def test_an_enum_default_is_declared_on_the_enum_and_reads_unknown_symbols() -> None:
    reader = Schema.of(NewPaint)
    assert reader.avro["fields"][0]["type"]["default"] == "OTHER"
    assert list(NewColour) == [NewColour.RED, NewColour.OTHER]  # no member of its own
    data = codec_for("avro", Schema.of(Paint)).encode(Paint(colour=Colour.BLUE))
    assert codec_for("avro", Schema.of(Paint), reader).decode(data) == NewPaint(
        colour=NewColour.OTHER
    )


def test_verify_says_how_to_give_a_python_enum_a_default(write_blueprint: Write) -> None:
    module = """
import enum
from collections.abc import Iterator
from pydantic import BaseModel
from streamlets import Inlet, Outlet, Streamlet

class Colour(enum.Enum):
    RED = "RED"
    BLUE = "BLUE"

class Paint(BaseModel):
    colour: Colour

class Reds(enum.Enum):
    __avro_aliases__ = ("Colour",)
    RED = "RED"

class RedPaint(BaseModel):
    __avro_aliases__ = ("Paint",)
    colour: Reds

class Src(Streamlet):
    out = Outlet(Paint)
    def generate(self) -> Iterator[Paint]:
        return iter(())

class Snk(Streamlet):
    paints = Inlet(RedPaint)
    def process(self, paint: RedPaint) -> None:
        return None
"""
    path = write_blueprint(
        """
        name: app
        streamlets:
          src: {class: sample_app:Src}
          snk: {class: sample_app:Snk}
        topics:
          t: {producers: [src.out], consumers: [snk.paints]}
        """,
        module=module,
    )
    (problem,) = [p for p in verify(path).problems if p.is_error]
    assert problem.hint is not None
    assert "__avro_default__" in problem.hint and "a Python Enum" in problem.hint
    assert "give the reader's enum a default symbol" not in problem.hint


def test_an_enum_default_that_is_no_member_is_refused() -> None:
    class Bad(enum.Enum):
        A = "A"
        __avro_default__ = "NOPE"

    class Holder(BaseModel):
        bad: Bad

    with pytest.raises(Exception, match="__avro_default__ = 'NOPE', which is none of its members"):
        Schema.of(Holder)


class Stamped(BaseModel):
    at: datetime


def test_a_naive_datetime_is_written_as_utc_and_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "streamlets.codecs")
    codec = codec_for("avro", Schema.of(Stamped))
    naive = codec.encode(Stamped(at=datetime(2026, 1, 1, 12)))
    codec.encode(Stamped(at=datetime(2026, 1, 1, 13)))
    aware = codec.encode(Stamped(at=datetime(2026, 1, 1, 12, tzinfo=UTC)))
    assert codec.decode(naive) == codec.decode(aware)  # the same instant, UTC
    # Avro dicts on a JSON topic too (a model's JSON keeps it naive: pydantic's own JSON).
    avro = {"type": "record", "name": "Tick", "fields": [
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}}
    ]}  # fmt: skip
    codec_for("json", Schema.of(avro)).encode({"at": datetime(2026, 1, 1, 12)})
    said = [r.getMessage() for r in caplog.records if "without a timezone" in r.getMessage()]
    assert [s.split(" holds")[0] for s in said] == ["Stamped.at", "Tick.at"]  # once each
    assert "written as UTC" in said[0] and "pydantic.AwareDatetime" in said[0]
