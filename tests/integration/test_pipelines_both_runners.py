"""The same pipeline scenarios on both runners: in-process and one process per replica on Kafka.

One blueprint holds every scenario (fan-out to two consumers, fan-in from three producers,
a replicated streamlet, an async ``process``, a streamlet raising on some records and a
record that does not match the topic schema). It runs once per runner with ``flow
run-local`` as a user runs it, ``--kafka --bootstrap`` on the session's Tansu broker for
the Kafka runner, and each test checks one scenario on the result. Dead letters are read
where each runner puts them: the run directory's ``dead-letters.jsonl`` locally, the
streamlet's dead-letter topic on Kafka.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from runner.kafka.broker import EmbeddedBroker
from runner.kafka.dead_letters import read_dead_letter_headers
from runner.kafka.settings import ENV_PREFIX
from tests.integration.conftest import FAST_GROUP, FLOW, KafkaTools

PIPELINE_APP = Path(__file__).resolve().parents[1] / "runner" / "pipeline_app.py"

#: Two numbered sources and a file (one line of which does not fit the schema) feed the
#: topic ``numbers``; ``sync`` (two replicas, refusing multiples of 25) and ``async`` both
#: consume all of it, each into its own topic and sink.
BLUEPRINT = """
streamlets:
  a: {class: pipeline_app:Numbers, config: {count: 40, label: a}}
  b: {class: pipeline_app:Numbers, config: {count: 60, label: b}}
  file:
    class: streamlets.library:FileSource
    config: {path: extra.jsonl, schema: "pipeline_app:Number"}
  sync:
    class: pipeline_app:TracedDouble
    replicas: 2
    config: {fail_every: 25, log: trace/sync.log}
  async: {class: pipeline_app:AsyncDouble}
  sink: {class: pipeline_app:Collect, config: {path: out/sync.jsonl}}
  twin-sink: {class: pipeline_app:Collect, config: {path: out/async.jsonl}}
topics:
  numbers:
    name: "{app}-numbers"
    producers: [a.out, b.out, file.out]
    consumers: [sync.numbers, async.numbers]
    partitions: 3
  doubled:
    name: "{app}-doubled"
    producers: [sync.out]
    consumers: [sink.records]
  twins:
    name: "{app}-twins"
    producers: [async.out]
    consumers: [twin-sink.records]
"""

EXTRA = '{"value": 101, "source": "f"}\n{"value": "many"}\n{"value": 102, "source": "f"}\n'

#: What the three sources emit, as (source, value).
NUMBERS = [("a", i) for i in range(40)] + [("b", i) for i in range(60)] + [("f", 101), ("f", 102)]
REFUSED = [v for _, v in NUMBERS if v and v % 25 == 0]  # a: 25; b: 25, 50


@dataclass
class DeadLetter:
    """A dead letter as either runner reports it."""

    streamlet: str
    stage: str
    message: str
    value: bytes


@dataclass
class Run:
    """The outcome of one ``flow run-local`` of the blueprint."""

    runner: str
    directory: Path
    returncode: int
    output: str
    dead: list[DeadLetter] = field(default_factory=list)

    def lines(self, relative: str) -> list[str]:
        """The lines of a file the pipeline wrote."""
        path = self.directory / relative
        return path.read_text(encoding="utf-8").splitlines() if path.exists() else []

    def collected(self, branch: str) -> list[int]:
        """The values the sink of one branch of the fan-out (``sync``, ``async``) collected."""
        return sorted(json.loads(line)["value"] for line in self.lines(f"out/{branch}.jsonl"))


def _local_dead_letters(run_dir: Path) -> list[DeadLetter]:
    path = run_dir / "dead-letters.jsonl"
    found = []
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        item = json.loads(line)
        value = item["value"]
        found.append(
            DeadLetter(
                item["streamlet"],
                item["stage"],
                item["error_message"],
                value.encode() if isinstance(value, str) else bytes(value),
            )
        )
    return found


def _kafka_dead_letters(kafka: KafkaTools, app: str, expected: dict[str, int]) -> list[DeadLetter]:
    found = []
    for streamlet, count in expected.items():
        topic = f"{app}.{streamlet}.dead-letters"
        for m in kafka.read(topic, count, timeout=30, settle=0.5):
            headers = read_dead_letter_headers(m.headers())
            assert headers["__streamlets.errors.streamlet"] == streamlet
            found.append(
                DeadLetter(
                    streamlet,
                    headers["__connect.errors.stage"],
                    headers["__connect.errors.exception.message"],
                    m.value(),
                )
            )
    return found


@pytest.fixture(scope="module", params=["local", "kafka"])
def runner(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    """Run the blueprint to its end on the runner named by the parameter."""
    which: str = request.param
    directory = tmp_path_factory.mktemp(f"pipeline-{which}")
    shutil.copy(PIPELINE_APP, directory / "pipeline_app.py")
    (directory / "extra.jsonl").write_text(EXTRA, encoding="utf-8")
    (directory / "trace").mkdir()
    app = f"both-{which}-{os.getpid()}"
    text = f"name: {app}\n" + textwrap.dedent(BLUEPRINT).replace("{app}", app)
    (directory / "blueprint.yaml").write_text(text, encoding="utf-8")
    command = [FLOW, "run-local", "blueprint.yaml", "--run-dir", "run", "-q"]
    env = dict(os.environ)
    kafka: KafkaTools | None = None
    if which == "kafka":
        broker: EmbeddedBroker = request.getfixturevalue("kafka_broker")
        kafka = KafkaTools(broker.bootstrap)
        command += ["--kafka", "--bootstrap", broker.bootstrap]
        for key, value in FAST_GROUP.items():
            env[f"{ENV_PREFIX}CONSUMER_{key.replace('.', '_').upper()}"] = value
    proc = subprocess.run(
        command,
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    run = Run(which, directory, proc.returncode, proc.stdout + proc.stderr)
    if proc.returncode == 0:
        if kafka is None:
            run.dead = _local_dead_letters(directory / "run")
        else:
            run.dead = _kafka_dead_letters(kafka, app, {"sync": len(REFUSED), "file": 1})
    yield run


def assert_delivered(runner: Run, got: list[Any], expected: list[Any]) -> None:
    """Every expected item came: exactly once in-process, at least once on Kafka (where a
    rebalance may hand a partition over before its last records' offsets were committed)."""
    if runner.runner == "local":
        assert sorted(got) == sorted(expected)
    else:
        assert set(got) == set(expected), (sorted(got), sorted(expected))


def test_the_run_finishes_cleanly(runner: Run) -> None:
    assert runner.returncode == 0, runner.output
    assert "Traceback" not in runner.output


def test_fan_in_from_three_producers_and_fan_out_to_two_consumers(runner: Run) -> None:
    assert runner.returncode == 0, runner.output
    values = sorted(v for _, v in NUMBERS)
    # Both consumers of 'numbers' got every record of a, b and the file's good lines.
    assert_delivered(runner, runner.collected("sync"), [v for v in values if v not in REFUSED])
    assert_delivered(runner, runner.collected("async"), values)


def test_a_replicated_streamlet_shares_the_records(runner: Run) -> None:
    assert runner.returncode == 0, runner.output
    seen: dict[str, list[tuple[str, int]]] = {}
    for line in runner.lines("trace/sync.log"):
        instance, source, value = line.split()
        records = seen.setdefault(instance, [])
        if source != "setup":
            records.append((source, int(value)))
    # Two replicas ran, and between them processed every record of the group.
    assert len(seen) == 2, sorted(seen)
    assert_delivered(runner, [r for records in seen.values() for r in records], NUMBERS)


def test_an_async_process_delivers_every_record(runner: Run) -> None:
    assert runner.returncode == 0, runner.output
    assert_delivered(runner, runner.collected("async"), [v for _, v in NUMBERS])


def test_records_a_streamlet_raises_on_are_dead_lettered(runner: Run) -> None:
    assert runner.returncode == 0, runner.output
    refused = [d for d in runner.dead if d.streamlet == "sync"]
    assert_delivered(runner, [d.message for d in refused], [f"refusing {v}" for v in REFUSED])
    assert {d.stage for d in refused} == {"process"}


def test_a_record_that_does_not_match_the_schema_is_dead_lettered(runner: Run) -> None:
    assert runner.returncode == 0, runner.output
    (bad,) = [d for d in runner.dead if d.streamlet == "file"]  # a source: no rebalance
    assert bad.value == b'{"value": "many"}'
    assert bad.stage == "decode" and "extra.jsonl:2" in bad.message
    assert {d.streamlet for d in runner.dead} == {"sync", "file"}  # nothing else went wrong
