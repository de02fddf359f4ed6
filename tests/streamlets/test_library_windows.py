"""streamlets.library:WindowAggregate configured from YAML alone (DESIGN §9): the
blueprint of the design runs through the testkit and gives WindowResult records; every
config mistake is a verify problem at its file and line."""

from __future__ import annotations

import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from blueprint import verify
from runner.testkit import Record, run_blueprint, run_streamlet
from streamlets.errors import ConfigError
from streamlets.library import WindowAggregate

MODELS = """
from datetime import datetime
from pydantic import BaseModel

class Reading(BaseModel):
    sensor_id: str
    temperature: float
    at: datetime
    site: str | None = None
"""

BLUEPRINT = """\
name: sensor-stats
streamlets:
  per-minute:
    class: streamlets.library:WindowAggregate
    config:
      input: sensors.streamlets:Reading     # inlet schema, module:Class
      key: sensor_id                        # key field (default: the record key)
      timestamp: at                         # event-time field (default: record timestamp)
      window: {type: tumbling, size: 60s, grace: 5s}   # hopping: size, step; session: gap
      aggregates: {avg: {mean: temperature}, hi: {max: temperature}, n: {count: {}}}
      emit: final                           # or: every
      late: skip                            # or: dead-letter
topics:
  readings: {consumers: [per-minute.records]}
  stats: {producers: [per-minute.results]}
"""


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The design's blueprint names `sensors.streamlets`, as the sensors example's package
    # is named: a test that imported that one must not lend it to this blueprint.
    for name in [m for m in sys.modules if m == "sensors" or m.startswith("sensors.")]:
        monkeypatch.delitem(sys.modules, name)
    package = tmp_path / "sensors"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "streamlets.py").write_text(MODELS)
    (tmp_path / "blueprint.yaml").write_text(BLUEPRINT)
    return tmp_path


def test_the_design_blueprint_runs_and_gives_window_results(app: Path) -> None:
    sys.path.insert(0, str(app))
    try:
        from sensors.streamlets import Reading  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(app))
    noon = datetime(2024, 1, 1, 12, tzinfo=UTC).timestamp()

    def reading(sensor: str, second: int, temperature: float) -> Record:
        at = datetime.fromtimestamp(noon + second, UTC)
        return Record(Reading(sensor_id=sensor, temperature=temperature, at=at))

    result = run_blueprint(
        app / "blueprint.yaml",
        inject={
            "readings": [
                reading("s1", 0, 20.0),
                reading("s2", 10, 30.0),
                reading("s1", 59, 22.0),
                reading("s1", 70, 25.0),  # 12:01:10: the first minute has closed
                reading("s1", 30, 99.0),  # late: skipped
            ]
        },
        collect=["stats"],
    )
    assert result.error is None
    minute = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    rows = [(r["key"], r["start"], r["avg"], r["hi"], r["n"]) for r in result.topics["stats"]]
    assert rows == [
        ("s1", minute, 21.0, 22.0, 2),
        ("s2", minute, 30.0, 30.0, 1),
        ("s1", minute.replace(minute=1), 25.0, 25.0, 1),  # closed at the end of the input
    ]
    assert [r.key for r in result.records["stats"]] == ["s1", "s2", "s1"]
    assert result.records["stats"][0].timestamp == minute.replace(minute=1)  # the end
    assert result.stats["per-minute"].late == 1
    assert result.dead_letters == []


def test_window_result_fields_have_the_aggregates_types() -> None:
    config = WindowAggregate.validate_config(
        {
            "input": {
                "type": "record",
                "name": "R",
                "fields": [
                    {"name": "n", "type": "int"},
                    {"name": "x", "type": ["null", "double"]},
                    {"name": "s", "type": "string"},
                ],
            },
            "window": {"type": "session", "gap": "5m"},
            "aggregates": {
                "count": {"count": {}},
                "total": {"sum": "n"},
                "avg": {"mean": "n"},
                "lo": {"min": "x"},
                "who": {"last": "s"},
            },
        }
    )
    schema = config.result_schema  # type: ignore[attr-defined]
    assert schema["name"] == "WindowResult"
    millis = {"type": "long", "logicalType": "timestamp-millis"}
    assert schema["fields"] == [
        {"name": "key", "type": "string"},
        {"name": "start", "type": millis},
        {"name": "end", "type": millis},
        {"name": "count", "type": "long"},
        {"name": "total", "type": "long"},  # an int field's sum is a long
        {"name": "avg", "type": "double"},
        {"name": "lo", "type": ["null", "double"]},
        {"name": "who", "type": "string"},
    ]


MISTAKES = [
    (
        "aggregates: {avg: {meen: temperature}}",
        10,
        "unknown aggregate 'meen'",
        "did you mean 'mean'?",
    ),
    ("aggregates: {avg: {mean: temprature}}", 10, "no field 'temprature'", None),
    ("aggregates: {avg: {mean: sensor_id}}", 10, "mean needs a number field", None),
    ("window: {type: tumbling, size: 60x}", 9, "size '60x' is not a duration", None),
    ("window: {type: tumbling, size: 60s, grace: -5s}", 9, "grace is -5s; it must be 0", None),
    (
        "window: {type: tumbling, size: 60s, gap: 5s}",
        9,
        "a tumbling window takes size, grace",
        None,
    ),
    ("window: {type: rolling, size: 60s}", 9, "the window type is tumbling", None),
    ("window: {type: hopping, size: 1m}", 9, "a hopping window needs 'step'", None),
    ("key: sensor", 7, "no field 'sensor'", "did you mean 'sensor_id'?"),
    ("timestamp: sensor_id", 8, "not an event time", None),
]


@pytest.mark.parametrize(("line", "at", "message", "hint"), MISTAKES)
def test_config_mistakes_are_verify_problems_at_their_line(
    app: Path, line: str, at: int, message: str, hint: str | None
) -> None:
    text = BLUEPRINT
    key = line.split(":", 1)[0]
    lines = text.splitlines()
    for index, old in enumerate(lines):
        if old.strip().startswith(f"{key}:"):
            indent = old[: len(old) - len(old.lstrip())]
            lines[index] = indent + line
    (app / "blueprint.yaml").write_text("\n".join(lines) + "\n")
    problems = [p for p in verify(app / "blueprint.yaml").problems if p.is_error]
    (problem,) = problems
    assert problem.code == "invalid-config"
    assert message in problem.message
    assert problem.location is not None and problem.location.line == at
    assert problem.location.file.endswith("blueprint.yaml")
    if hint is not None:
        assert problem.hint == hint


def test_several_mistakes_are_reported_at_once(app: Path) -> None:
    text = BLUEPRINT.replace("size: 60s", "size: 1 minute").replace(
        "{max: temperature}", "{max: at2}"
    )
    (app / "blueprint.yaml").write_text(text)
    problems = [p for p in verify(app / "blueprint.yaml").problems if p.is_error]
    assert len(problems) == 2
    assert {p.message.split(": ")[1] for p in problems} == {
        "config 'window.size'",
        "config 'aggregates.hi.max'",
    }


def test_a_bad_config_given_in_code_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown aggregate 'avgg'"):
        run_streamlet(
            WindowAggregate,
            config={
                "input": {"type": "record", "name": "R", "fields": [{"name": "x", "type": "long"}]},
                "window": {"type": "tumbling", "size": "1m"},
                "aggregates": {"a": {"avgg": "x"}},
            },
        )


def test_a_blueprint_with_a_window_aggregate_verifies_clean(app: Path) -> None:
    result = verify(app / "blueprint.yaml")
    assert not [p for p in result.problems if p.is_error]
    text = textwrap.dedent(BLUEPRINT)
    assert "WindowAggregate" in text
