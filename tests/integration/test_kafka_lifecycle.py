"""The run lifecycle under `flow run-streamlet`, on a real broker: the same stops and hook
failures as under `flow run-local` (tests/runner/test_lifecycle.py)."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

from runner.kafka.broker import free_port
from runner.kafka.status import read_status
from streamlets.codecs import codec_for
from streamlets.schema import Schema
from tests.integration.conftest import KafkaApp, KafkaTools, stop
from tests.runner.lifecycle_app import Tick
from tests.runner.test_lifecycle import (
    post,
    post_while_stopping,
    rows,
    wait_for,
    wait_until_accepting,
)

LIFECYCLE_APP = Path(__file__).resolve().parents[1] / "runner" / "lifecycle_app.py"


def _app(make: Callable[..., KafkaApp], body: str) -> KafkaApp:
    app = make(body)
    shutil.copy(LIFECYCLE_APP, app.directory / "lifecycle_app.py")
    return app


def _running(status: Path) -> Callable[[], bool]:
    def check() -> bool:
        found = read_status(status)
        return found is not None and found.state == "running"

    return check


def test_sigterm_stops_a_waiting_http_ingress_with_teardown(
    kafka_app: Callable[..., KafkaApp], tmp_path: Path
) -> None:
    port, marker = free_port(), tmp_path / "teardown.txt"
    app = _app(
        kafka_app,
        f"""
        streamlets:
          ingress:
            class: lifecycle_app:MarkedIngress
            config: {{schema: lifecycle_app:Tick, port: {port}, marker: {marker}}}
        topics:
          ticks: {{name: "{{app}}.ticks", producers: [ingress.out], partitions: 1}}
        """,
    )
    proc = app.streamlet("ingress")
    try:

        def accepted() -> bool:
            try:
                return post(port, {"source": "http", "index": 0, "at": time.time()}) == 202
            except OSError:
                return False

        wait_for(accepted, timeout=60)
        started = time.monotonic()
        code = stop(proc, signal.SIGTERM)
        seconds = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, app.log("ingress")
    assert seconds < 10, seconds  # well inside the 30 s grace period
    assert marker.read_text() == "teardown ingress\n"


def test_sigterm_stops_a_blocking_sync_source_with_teardown(
    kafka_app: Callable[..., KafkaApp], tmp_path: Path
) -> None:
    marker, status = tmp_path / "teardown.txt", tmp_path / "slow.status.json"
    app = _app(
        kafka_app,
        f"""
        streamlets:
          slow:
            class: lifecycle_app:SlowSource
            config: {{sleep_s: 60, marker: {marker}}}
        topics:
          ticks: {{name: "{{app}}.ticks", producers: [slow.out], partitions: 1}}
        """,
    )
    proc = app.streamlet("slow", status=status)
    try:
        wait_for(_running(status), timeout=60)
        time.sleep(0.5)  # inside its time.sleep(60)
        started = time.monotonic()
        code = stop(proc, signal.SIGTERM)
        seconds = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, app.log("slow")
    assert seconds < 5, seconds
    assert marker.read_text() == "teardown slow\n"


def test_a_failing_teardown_exits_1_with_its_streamlet_hook_and_line(
    kafka_app: Callable[..., KafkaApp], tmp_path: Path
) -> None:
    out, status = tmp_path / "out.jsonl", tmp_path / "store.status.json"
    app = _app(
        kafka_app,
        f"""
        streamlets:
          ticks:
            class: lifecycle_app:SlowSource
            config: {{sleep_s: 0, count: 3}}
          store:
            class: lifecycle_app:Recorder
            config: {{path: {out}, fail_teardown: true}}
        topics:
          ticks:
            name: "{{app}}.ticks"
            producers: [ticks.out]
            consumers: [store.ticks]
            partitions: 1
        """,
    )
    source = app.streamlet("ticks")
    assert source.wait(60) == 0, app.log("ticks")
    proc = app.streamlet("store", status=status)
    try:
        wait_for(lambda: len(rows(out)) == 3, timeout=60)
        code = stop(proc, signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = app.log("store")
    assert code == 1, log
    assert "streamlet 'store': teardown() failed at lifecycle_app.py:" in log
    assert "RuntimeError: cannot flush the sink" in log
    assert log.count("teardown() failed") == 1
    final = read_status(status)
    assert final is not None and final.state == "failed"
    assert final.error is not None and "teardown() failed" in final.error


def test_every_record_of_every_202_answer_is_on_the_topic_after_sigterm(
    kafka_app: Callable[..., KafkaApp], kafka: KafkaTools
) -> None:
    """SIGTERM while 1,000 records are being POSTed: what got 202 is on the topic (the
    broker acknowledged it before the process exited), nothing else is, exit 0."""
    port = free_port()
    app = _app(
        kafka_app,
        f"""
        streamlets:
          ingress:
            class: streamlets.library:HttpIngress
            config: {{schema: lifecycle_app:Tick, port: {port}, queue_size: 1000}}
        topics:
          ticks: {{name: "{{app}}.ticks", producers: [ingress.out], partitions: 1}}
        """,
    )
    proc = app.streamlet("ingress")
    try:
        wait_until_accepting(port, proc)
        accepted, statuses = post_while_stopping(port, lambda: os.kill(proc.pid, signal.SIGTERM))
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, app.log("ingress")
    assert len(accepted) >= 500, statuses
    assert set(statuses) <= {202, 503, None}, statuses
    codec = codec_for("avro", Schema.of(Tick))
    found = kafka.read(f"{app.name}.ticks", len(accepted), timeout=60, settle=2)
    delivered = [codec.decode(message.value()).index for message in found]
    assert sorted(delivered) == sorted(accepted), app.log("ingress")
