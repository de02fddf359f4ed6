"""`flow run-local --kafka` under faults: sinks killed again and again lose nothing and the
run still ends by itself; a dead embedded broker ends the run with an error."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import FLOW, KafkaApp, alive
from tests.integration.test_kafka_run_local import _run_local_on_kafka

PIPELINE = """
streamlets:
  numbers: {class: ktapp:Numbers, config: {count: 4000}}
  pass:
    class: ktapp:Passthrough
    config: {delay: 0.01}
  store:
    class: streamlets.library:FileSink
    config: {path: out.jsonl, schema: "ktapp:Item", mode: MODE}
topics:
  items:
    name: "{app}-items"
    producers: [numbers.out]
    consumers: [pass.inp]
    partitions: 2
  out:
    name: "{app}-out"
    producers: [pass.out]
    consumers: [store.records]
"""


def _running_incarnation(
    run_dir: Path, label: str, after: int, *, key: str = "records_in", at_least: int = 21
) -> tuple[int, int]:
    """(incarnation, pid) of a process of ``label`` newer than ``after`` that has taken
    some records (its counter ``key`` at ``at_least``) and is alive."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        for path in (run_dir / "status").glob(f"{label}.*.json"):
            incarnation = int(path.name.split(".")[-2])
            if incarnation <= after:
                continue
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if data["stats"][key] >= at_least and alive(int(data["pid"])):
                return incarnation, int(data["pid"])
        time.sleep(0.05)
    raise AssertionError(f"no new process of {label} got going")


@pytest.mark.parametrize("mode", ["append", "overwrite"])
def test_the_run_ends_by_itself_after_sigkills_of_the_sink_and_loses_nothing(
    kafka_app: Callable[..., KafkaApp], tmp_path: Path, mode: str
) -> None:
    app = kafka_app(PIPELINE.replace("MODE", mode))
    run_dir = tmp_path / "run"
    supervisor = _run_local_on_kafka(app, run_dir, "-q")
    try:
        seen = 0
        for _ in range(4):
            seen, pid = _running_incarnation(run_dir, "store-0", seen)
            os.kill(pid, signal.SIGKILL)
        output, _ = supervisor.communicate(timeout=240)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
    assert supervisor.returncode == 0, output
    assert output.count("store-0: crashed (signal 9)") == 4, output
    lines = (app.directory / "out.jsonl").read_text().splitlines()
    ids = {json.loads(line)["id"] for line in lines}  # every line whole
    assert ids == set(range(4000))  # at-least-once: duplicates allowed, losses not


def test_run_streamlet_refuses_a_sink_that_a_restart_would_empty(
    kafka_app: Callable[..., KafkaApp],
) -> None:
    app = kafka_app(PIPELINE.replace("MODE", "overwrite"))
    proc = app.streamlet("store")
    assert proc.wait(60) == 1
    log = app.log("store")
    assert "streamlet 'store' cannot run where its process may be restarted" in log
    assert "set mode: append" in log


def test_a_dead_embedded_broker_ends_the_run_with_an_error(
    kafka_app: Callable[..., KafkaApp], tmp_path: Path
) -> None:
    app = kafka_app(PIPELINE.replace("MODE", "append").replace("count: 3000", "count: 10000000"))
    run_dir = tmp_path / "run"
    # No --bootstrap: the run starts a broker of its own.
    supervisor = subprocess.Popen(
        [FLOW, "run-local", str(app.blueprint), "--kafka", "-q", "--run-dir", str(run_dir)],
        cwd=app.directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert supervisor.stdout is not None
        pid = None
        for line in supervisor.stdout:
            found = re.search(r"embedded Kafka broker \(Tansu\) on \S+, pid (\d+)", line)
            if found:
                pid = int(found.group(1))
            if "started" in line and "streamlet process" in line:
                break
        assert pid is not None
        _running_incarnation(run_dir, "store-0", 0)
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        output, _ = supervisor.communicate(timeout=60)
        seconds = time.monotonic() - killed
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
    assert supervisor.returncode == 1, output
    assert seconds < 30, seconds
    assert f"the embedded Kafka broker (pid {pid}) exited" in output
    assert str(run_dir / "broker.log") in output
    assert "Traceback" not in output
