"""Windows and timers on Kafka (DESIGN §9): ``flow run-local --kafka`` gives the windows
the in-process runner gives, across partitions and replicas and through a second,
downstream window, closing the open ones at the end of the bounded run (its end-of-input
cue, in graph order); a SIGTERM closes none; a timer reports under ``flow run-streamlet``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from blueprint import verify
from runner.testkit import run_blueprint
from streamlets.codecs import codec_for
from streamlets.library.window_aggregate import WindowAggregateConfig
from streamlets.schema import Schema
from tests.integration.conftest import FAST_GROUP, FLOW, KafkaApp, KafkaTools, stop

APP = Path(__file__).with_name("windows_app.py")

BLUEPRINT = """\
name: {name}
streamlets:
  events: {{class: windows_app:Events, config: {{count: 300}}}}
  per-minute:
    class: streamlets.library:WindowAggregate
    replicas: 2
    config:
      input: windows_app:Event
      timestamp: at
      window: {{type: tumbling, size: 60s, grace: 5s}}
      aggregates: {{n: {{count: {{}}}}, total: {{sum: value}}, hi: {{max: value}}}}
      late: dead-letter
  per-hour:
    class: streamlets.library:WindowAggregate
    config:
      input: {minute}
      window: {{type: session, gap: 2m}}
      aggregates: {{windows: {{count: {{}}}}, n: {{sum: n}}}}
topics:
  events:
    {{name: "{name}.events", producers: [events.out], consumers: [per-minute.records],
      partitions: 3}}
  minutes:
    {{name: "{name}.minutes", producers: [per-minute.results], consumers: [per-hour.records],
      partitions: 3}}
  hours: {{name: "{name}.hours", producers: [per-hour.results]}}
"""

MINUTE_CONFIG = {
    "input": "windows_app:Event",
    "timestamp": "at",
    "window": {"type": "tumbling", "size": "60s"},
    "aggregates": {"n": {"count": {}}, "total": {"sum": "value"}, "hi": {"max": "value"}},
}


def _app(tmp_path: Path, name: str) -> Path:
    shutil.copy(APP, tmp_path / "windows_app.py")
    sys.path.insert(0, str(tmp_path))
    try:
        minute = WindowAggregateConfig.model_validate(MINUTE_CONFIG).result_schema
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("windows_app", None)
    path = tmp_path / "blueprint.yaml"
    path.write_text(BLUEPRINT.format(name=name, minute=json.dumps(minute)))
    (tmp_path / "config.yaml").write_text(
        "kafka:\n  consumer:\n" + "".join(f"    {k}: {v}\n" for k, v in FAST_GROUP.items())
    )
    return path


def _decode(schema: Any, messages: list[Any]) -> list[dict[str, Any]]:
    codec = codec_for("avro", Schema.of(schema), Schema.of(schema))
    return [codec.decode(m.value()) for m in messages]


def _rows(values: list[dict[str, Any]], *names: str) -> list[tuple[Any, ...]]:
    return sorted((v["key"], v["start"], v["end"], *(v[n] for n in names)) for v in values)


@pytest.mark.slow
def test_run_local_on_kafka_gives_the_in_process_windows_and_closes_them_at_the_end(
    tmp_path: Path, kafka: KafkaTools
) -> None:
    name = f"win{time.monotonic_ns() % 10**8}"
    blueprint = _app(tmp_path, name)
    local = run_blueprint(blueprint, collect=["minutes", "hours"])
    assert local.error is None
    want_minutes = _rows(local.topics["minutes"], "n", "total", "hi")
    want_hours = _rows(local.topics["hours"], "windows", "n")
    late = len(local.dead_letters)
    assert want_minutes and want_hours and late > 0  # the jitter makes some late records

    done = subprocess.run(
        [
            FLOW,
            "run-local",
            str(blueprint),
            "--kafka",
            "--bootstrap",
            kafka.bootstrap,
            "--config",
            str(tmp_path / "config.yaml"),
            "-q",
            "--run-dir",
            str(tmp_path / "run"),
        ],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    verified = verify(blueprint).unwrap()
    minute_schema = verified.streamlets["per-minute"].schema("results").avro
    hour_schema = verified.streamlets["per-hour"].schema("results").avro
    minutes = _decode(minute_schema, kafka.read(f"{name}.minutes", len(want_minutes), settle=1))
    hours = _decode(hour_schema, kafka.read(f"{name}.hours", len(want_hours), settle=1))
    assert _rows(minutes, "n", "total", "hi") == want_minutes
    # The hour sessions close only at the end: after the minutes closed and were read.
    assert _rows(hours, "windows", "n") == want_hours
    dead = kafka.read(f"{name}.per-minute.dead-letters", late, settle=1)
    assert len(dead) == late
    assert (tmp_path / "run" / "end-of-input" / "per-hour").exists()


@pytest.mark.slow
def test_a_sigterm_closes_no_window(kafka_app: Any, kafka: KafkaTools) -> None:
    app: KafkaApp = kafka_app(
        """
        streamlets:
          agg:
            class: streamlets.library:WindowAggregate
            config:
              input: ktapp:Item
              window: {type: tumbling, size: 1h}
              aggregates: {n: {count: {}}}
        topics:
          items: {name: "{app}.items", consumers: [agg.records], partitions: 1}
          out: {name: "{app}.out", producers: [agg.results], partitions: 1}
        """
    )
    codec = codec_for("avro", Schema.of(_item_schema()), Schema.of(_item_schema()))
    kafka.produce(
        f"{app.name}.items",
        [codec.encode({"id": i, "payload": "x"}) for i in range(10)],
        keys=[b"k"] * 10,
        timestamp=1_700_000_000_000,
    )
    process = app.streamlet("agg")
    deadline = time.monotonic() + 60
    while "assigned" not in app.log("agg") and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)  # the records are taken
    assert stop(process) == 0, app.log("agg")
    assert "closed the open windows" not in app.log("agg")
    assert kafka.read(f"{app.name}.out", 1, timeout=3) == []

    # The same process given the end-of-input cue closes its window.
    cue = app.directory / "end-of-input"
    cue.write_text("")
    process = app.streamlet("agg", "--end-of-input-file", str(cue))
    try:
        kafka.produce(f"{app.name}.items", [codec.encode({"id": 99, "payload": "y"})], keys=[b"k"])
        found = kafka.read(f"{app.name}.out", 1, timeout=60)
        assert len(found) == 1
    finally:
        assert stop(process) == 0, app.log("agg")
    assert "closed the open windows" in app.log("agg")


def _item_schema() -> dict[str, Any]:
    return {
        "type": "record",
        "name": "Item",
        "fields": [{"name": "id", "type": "long"}, {"name": "payload", "type": "string"}],
    }


def test_a_timer_reports_under_run_streamlet(
    tmp_path: Path, kafka_app: Any, kafka: KafkaTools
) -> None:
    shutil.copy(APP, tmp_path / "windows_app.py")
    app: KafkaApp = kafka_app(
        """
        streamlets:
          report: {class: windows_app:Reporter}
        topics:
          events: {name: "{app}.events", consumers: [report.events], partitions: 1}
          reports: {name: "{app}.reports", producers: [report.reports], partitions: 1}
        """
    )
    process = app.streamlet("report")
    try:
        found = kafka.read(f"{app.name}.reports", 3, timeout=60)
    finally:
        assert stop(process) == 0, app.log("report")
    reports = _decode(
        {
            "type": "record",
            "name": "Reports",
            "fields": [{"name": "seen", "type": "long"}, {"name": "calls", "type": "long"}],
        },
        found,
    )
    assert [r["calls"] for r in reports][:3] == [1, 2, 3]
