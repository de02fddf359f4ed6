"""Dead letters under `flow run-local --kafka`, read back with `flow dead-letters` and
replayed, on the embedded broker: in the run directory as the in-process runner writes
them, and on the dead-letter topics."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import APP_MODULE, FLOW, KafkaApp, KafkaTools, item_ids

pytestmark = pytest.mark.slow  # runs on the broker: about a minute

PIPELINE = """
streamlets:
  numbers: {class: ktapp:Numbers, config: {count: 60}}
  pass: {class: ktapp:Passthrough, config: {fail_on: [3, 17, 42]}}
  store: {class: ktapp:ItemFile, config: {path: ids.txt}}
topics:
  items: {name: "{app}-items", producers: [numbers.out], consumers: [pass.inp], partitions: 2}
  out: {name: "{app}-out", producers: [pass.out], consumers: [store.inp]}
"""


def _flow(app: KafkaApp, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLOW, *args],
        cwd=app.directory,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def ran(kafka_app: Callable[..., KafkaApp], tmp_path: Path) -> tuple[KafkaApp, Path, str]:
    """The pipeline run once with `flow run-local --kafka`: (app, run dir, its stderr)."""
    app = kafka_app(PIPELINE)
    run_dir = tmp_path / "run-kafka"
    proc = _flow(
        app, "run-local", str(app.blueprint), "--kafka", "--bootstrap", app.bootstrap,
        "--config", str(app.config), "--run-dir", str(run_dir),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return app, run_dir, proc.stderr


def test_the_run_directory_holds_every_dead_letter_in_the_in_process_form(
    ran: tuple[KafkaApp, Path, str], tmp_path: Path
) -> None:
    app, run_dir, stderr = ran
    on_kafka = _lines(run_dir / "dead-letters.jsonl")
    local = _flow(
        app, "run-local", str(app.blueprint), "-q", "--config", str(app.config),
        "--run-dir", str(tmp_path / "run-local"),
    )  # fmt: skip
    assert local.returncode == 0, local.stderr
    in_process = _lines(tmp_path / "run-local" / "dead-letters.jsonl")

    def essence(d: dict[str, object]) -> tuple[object, ...]:
        return (d["streamlet"], d["inlet"], d["stage"], d["error_class"], d["error_message"])

    assert sorted(map(essence, on_kafka)) == sorted(map(essence, in_process))
    assert sorted(d["value"] for d in on_kafka) == sorted(d["value"] for d in in_process)
    assert all(set(d) == set(in_process[0]) for d in on_kafka)  # the same fields
    assert {d["topic"] for d in on_kafka} == {f"{app.name}-items"}  # where on Kafka
    assert all("item " in str(d["stack_trace"]) for d in on_kafka)
    # The summary names the file, the topic and the first error with its line.
    # (paths relative to the current directory, the app's)
    assert "written to run-kafka/dead-letters.jsonl (to look at them: flow dead-letters" in stderr
    assert f"dead-letter topics ({app.name}.pass.dead-letters)" in stderr
    assert "pass: 3 dead letters, the first at stage process: ValueError: item " in stderr
    raise_line = next(n for n, line in enumerate(APP_MODULE.splitlines(), 1) if "is poison" in line)
    assert f"ktapp.py:{raise_line}, in process)" in stderr
    # A normal end is quiet: no drain line per process; rates while records moved.
    assert "finishing in-flight records" not in stderr
    assert "records/s: while each streamlet was moving records" in stderr


def test_flow_dead_letters_shows_them_from_the_run_directory_and_from_kafka(
    ran: tuple[KafkaApp, Path, str],
) -> None:
    app, run_dir, _ = ran
    from_dir = _flow(app, "dead-letters", str(app.blueprint), "--run-dir", str(run_dir))
    assert from_dir.returncode == 0, from_dir.stderr
    text = from_dir.stdout
    assert text.count("#") == 3 and "pass.inp  stage process  ValueError" in text
    assert "item 17 is poison" in text
    assert '"id": 42' in text  # the original record, decoded
    assert f"from {app.name}-items [" in text
    assert "3 dead letter(s)" in from_dir.stderr

    from_kafka = _flow(
        app, "dead-letters", str(app.blueprint), "pass", "--config", str(app.config),
        "--bootstrap", app.bootstrap, "--format", "json",
    )  # fmt: skip
    assert from_kafka.returncode == 0, from_kafka.stderr
    rows = [json.loads(line) for line in from_kafka.stdout.splitlines()]
    assert sorted(r["record"]["id"] for r in rows) == [3, 17, 42]
    assert {r["stage"] for r in rows} == {"process"}
    assert f"in {app.name}.pass.dead-letters" in from_kafka.stderr


def test_replay_sends_the_records_back_to_their_topic(
    ran: tuple[KafkaApp, Path, str], kafka: KafkaTools
) -> None:
    app, run_dir, _ = ran
    topic = f"{app.name}-items"
    before = item_ids(kafka.read(topic, 60))
    assert len(before) == 60
    replay = _flow(
        app, "dead-letters", str(app.blueprint), "--run-dir", str(run_dir),
        "--bootstrap", app.bootstrap, "--replay",
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    assert f"replayed 3 record(s) to {topic} (3)" in replay.stderr
    after = item_ids(kafka.read(topic, 63, settle=1.0))
    assert sorted(after) == sorted([*before, 3, 17, 42])


def test_replay_needs_kafka(ran: tuple[KafkaApp, Path, str]) -> None:
    app, run_dir, _ = ran
    proc = _flow(app, "dead-letters", str(app.blueprint), "--run-dir", str(run_dir), "--replay")
    assert proc.returncode == 2
    assert "--replay sends the records to Kafka: give --bootstrap" in proc.stderr
