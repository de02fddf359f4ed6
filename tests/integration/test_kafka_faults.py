"""`flow run-streamlet` when things go wrong around it: a broker out of reach, a broker that
refuses the client's security settings, a stop during start-up, records too large."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.kafka.broker import free_port
from tests.integration.conftest import FLOW, KafkaApp, stop

PIPELINE = """
streamlets:
  numbers: {class: ktapp:Numbers, config: {count: 20}}
  pass: {class: ktapp:Passthrough}
topics:
  items: {name: "{app}-items", producers: [numbers.out], consumers: [pass.inp]}
  out: {name: "{app}-out", producers: [pass.out]}
"""

#: How long a streamlet is left trying to reach a closed port.
OUT_OF_REACH_SECONDS = 10.0


def _unreachable(app: KafkaApp) -> KafkaApp:
    """The same application, pointed at a loopback port nothing listens on."""
    return KafkaApp(app.name, app.directory, app.blueprint, app.config, f"127.0.0.1:{free_port()}")


def _lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.strip()]


@pytest.mark.parametrize("create_topics", [True, False], ids=["starting", "consuming"])
def test_a_broker_out_of_reach_is_reported_once_per_interval_and_sigterm_stops(
    kafka_app: Callable[..., KafkaApp], create_topics: bool
) -> None:
    app = _unreachable(kafka_app(PIPELINE))
    extra = () if create_topics else ("--no-create-topics",)
    process = app.streamlet("pass", *extra)
    try:
        time.sleep(OUT_OF_REACH_SECONDS)
        assert process.poll() is None, app.log("pass")  # it waits; it does not crash-loop
        started = time.monotonic()
        code = stop(process, timeout=30)
        took = time.monotonic() - started
    finally:
        if process.poll() is None:
            stop(process, signal.SIGKILL)
    log = app.log("pass")
    assert code == 0, log
    # Before the fix: a line per connection attempt, about 20 a second.
    failures = [line for line in _lines(log) if "connection to a Kafka broker failed" in line]
    assert 1 <= len(failures) <= 3, log
    assert "Connection refused" in failures[0] and "logged once every 10 s" in failures[0]
    assert len(_lines(log)) <= 8, log
    assert "Traceback" not in log
    if create_topics:
        assert "waiting for the Kafka broker at 127.0.0.1:" in log
        # SIGTERM in the middle of the topic check is honoured at the next attempt (~1 s);
        # it used to wait for the 30 s request (15.7 s in the issue).
        assert took < 10, took
        assert "stopped during start-up, before taking any input" in log


def test_sasl_against_a_broker_without_sasl_says_authentication_failed(
    kafka_app: Callable[..., KafkaApp], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    app = kafka_app(PIPELINE)
    for key, value in {
        "SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "SASL_MECHANISM": "PLAIN",
        "SASL_USERNAME": "pipeline",
        "SASL_PASSWORD": "hunter2-secret",
    }.items():
        monkeypatch.setenv(f"STREAMLETS_KAFKA_{key}", value)
    process = app.streamlet("pass")
    try:
        code = process.wait(30)
    finally:
        if process.poll() is None:
            stop(process, signal.SIGKILL)
    log = app.log("pass")
    assert code == 1, log  # a restart would fail the same way
    assert f"authentication with the Kafka broker at {app.bootstrap} failed" in log, log
    assert "security.protocol=SASL_PLAINTEXT, sasl.mechanism=PLAIN" in log
    assert "SASL PLAIN mechanism handshake failed" in log  # what the client was told
    assert "cannot reach" not in log
    assert "hunter2-secret" not in log and "Traceback" not in log

    # flow run-local --kafka checks the topics itself first: the same error, at once.
    run = subprocess.run(
        [
            FLOW,
            "run-local",
            str(app.blueprint),
            "--kafka",
            "--bootstrap",
            app.bootstrap,
            "-q",
            "--run-dir",
            str(tmp_path / "run"),
        ],
        cwd=app.directory,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 1, run.stderr
    assert f"authentication with the Kafka broker at {app.bootstrap} failed" in run.stderr
    assert "hunter2-secret" not in run.stderr + run.stdout
