"""The sensor-stats example (examples/sensor-stats) on the in-process runner: its minute
windows against a brute-force computation over the same readings (which readings are late
included), each minute joined with its sensor's location, and `flow verify`."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from runner.cli import cli
from runner.testkit import run_blueprint
from streamlets.codecs import codec_for
from streamlets.schema import Schema

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sensor-stats"
BLUEPRINT = EXAMPLE / "blueprint.yaml"
MINUTE = timedelta(minutes=1)
GRACE = timedelta(seconds=20)  # the window's grace in sensor_stats/streamlets.py

#: (sensor, start, end, mean, max, count, site, room); start and end as datetimes.
Row = tuple[str, datetime, datetime, float, float, int, str | None, str | None]


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def readings() -> list[dict[str, Any]]:
    return _lines(EXAMPLE / "data" / "readings.jsonl")


def locations() -> dict[str, dict[str, Any]]:
    return {row["sensor_id"]: row for row in _lines(EXAMPLE / "data" / "locations.jsonl")}


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _minute_of(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def late_readings(rows: list[dict[str, Any]]) -> list[int]:
    """The indexes of the late readings, in file order.

    A reading is late when stream time of its partition (the latest event time read from
    it before) is at least its minute's end plus the grace. Which sensors share a
    partition is the runner's business; the data is made so that it does not matter: the
    verdict is the same whether stream time is the sensor's own (the least a partition
    holding it can have seen) or every sensor's (the most).
    """
    late = []
    overall: datetime | None = None
    own: dict[str, datetime] = {}
    for i, row in enumerate(rows):
        at, sensor = _at(row["taken_at"]), row["sensor_id"]
        closes = _minute_of(at) + MINUTE + GRACE
        by_own = sensor in own and own[sensor] >= closes
        by_all = overall is not None and overall >= closes
        assert by_own == by_all, f"reading {i}: lateness would depend on the partitioning"
        if by_all:
            late.append(i)
        overall = at if overall is None else max(overall, at)
        own[sensor] = max(own.get(sensor, at), at)
    return late


def _after_their_minute(rows: list[dict[str, Any]]) -> list[int]:
    """The readings that come after a later one whose minute is past theirs' end."""
    found = []
    overall: datetime | None = None
    for i, row in enumerate(rows):
        at = _at(row["taken_at"])
        if overall is not None and overall >= _minute_of(at) + MINUTE:
            found.append(i)
        overall = at if overall is None else max(overall, at)
    return found


def expected() -> set[Row]:
    """Per sensor and minute: the mean (rounded to 0.01), max and count of the readings
    that are not late, with the sensor's site and room (``None`` when it has none)."""
    rows = readings()
    late = set(late_readings(rows))
    temperatures: dict[tuple[str, datetime], list[float]] = {}
    for i, row in enumerate(rows):
        if i not in late:
            key = (row["sensor_id"], _minute_of(_at(row["taken_at"])))
            temperatures.setdefault(key, []).append(row["temperature"])
    where = locations()
    out = set()
    for (sensor, start), values in temperatures.items():
        place = where.get(sensor, {})
        total = 0.0
        for value in values:  # in file order, as the window adds them
            total += value
        out.add(
            (
                sensor,
                start,
                start + MINUTE,
                round(total / len(values), 2),
                max(values),
                len(values),
                place.get("site"),
                place.get("room"),
            )
        )
    return out


def result_rows(records: list[dict[str, Any]]) -> set[Row]:
    rows = set()
    for r in records:
        start, end = (_at(r[f]) if isinstance(r[f], str) else r[f] for f in ("start", "end"))
        rows.add(
            (r["sensor_id"], start, end, r["mean"], r["max"], r["count"], r["site"], r["room"])
        )
    assert len(rows) == len(records)  # one record per sensor and minute
    return rows


def run_local(tmp_path: Path) -> tuple[set[Row], list[dict[str, Any]]]:
    """The example under `flow run-local`: its results and its dead letters."""
    out = tmp_path / "minute-stats.jsonl"
    run = tmp_path / "run"
    result = CliRunner().invoke(
        cli,
        [
            "run-local",
            str(BLUEPRINT),
            "-q",
            "--run-dir",
            str(run),
            "--set",
            f"stats-file.path={out}",
        ],
    )
    assert result.exit_code == 0, result.output
    return result_rows(_lines(out)), _lines(run / "dead-letters.jsonl")


@pytest.fixture(autouse=True)
def _example_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLE))


def test_the_data_has_what_the_example_shows() -> None:
    rows = readings()
    sensors = {row["sensor_id"] for row in rows}
    times = [_at(row["taken_at"]) for row in rows]
    out_of_order = sum(1 for a, b in pairwise(times) if b < a)
    assert 300 <= len(rows) <= 500 and 5 <= len(sensors) <= 10
    late = late_readings(rows)
    assert out_of_order > 10  # readings out of order, most of them within the grace,
    assert len(_after_their_minute(rows)) > len(late) > 0  # some after their minute ended,
    assert set(late) < set(_after_their_minute(rows))  # a few of those too late
    assert sensors - set(locations())  # a sensor the locations table does not know


def test_the_minute_stats_are_the_brute_force_ones_with_their_locations(tmp_path: Path) -> None:
    want = expected()
    got, dead = run_local(tmp_path)
    assert got == want
    where = locations()
    for sensor, *_, site, room in got:
        if sensor in where:
            assert (site, room) == (where[sensor]["site"], where[sensor]["room"])
        else:  # the left join: the minute goes out without a location
            assert (site, room) == (None, None)
    # Every late reading and nothing else is a dead letter, at stage late.
    rows = readings()
    late = [rows[i]["sensor_id"] for i in late_readings(rows)]
    assert [d["stage"] for d in dead] == ["late"] * len(late)
    assert Counter(d["key"] for d in dead) == Counter(late)


def test_the_window_results_are_keyed_by_sensor_and_stamped_with_the_minutes_end(
    tmp_path: Path,
) -> None:
    result = run_blueprint(
        BLUEPRINT,
        collect=["minute-stats", "located"],
        sets=[f"stats-file.path={tmp_path}/minute-stats.jsonl"],
    )
    assert result.error is None
    minutes = result.records["minute-stats"]
    assert {(m.key, m.timestamp) for m in minutes} == {
        (m.value.sensor_id, m.value.end) for m in minutes
    }
    located = [r.model_dump() for r in result.topics["located"]]
    assert result_rows(located) == expected()
    # The late readings are the dead letters, decoded: the readings the brute force skips.
    rows = readings()
    from sensor_stats.streamlets import Reading  # the example's module, on sys.path meanwhile

    codec = codec_for("avro", Schema.of(Reading), Schema.of(Reading))
    dead = [codec.decode(d.original.value) for d in result.dead_letters]
    assert all(d.stage == "late" and d.streamlet == "per-minute" for d in result.dead_letters)
    assert sorted((d.sensor_id, d.temperature) for d in dead) == sorted(
        (rows[i]["sensor_id"], rows[i]["temperature"]) for i in late_readings(rows)
    )
    assert result.stats["per-minute"].dead_lettered == len(dead)


def test_the_example_verifies() -> None:
    result = CliRunner().invoke(cli, ["verify", str(BLUEPRINT)])
    assert result.exit_code == 0, result.output
    assert "blueprint is valid" in result.output
