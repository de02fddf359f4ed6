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
from runner.kafka.dead_letters import (
    TRUNCATED_HEADER,
    VALUE_SIZE_HEADER,
    read_dead_letter_headers,
)
from streamlets.codecs import codec_for
from streamlets.schema import Schema
from tests.integration.conftest import FLOW, Item, KafkaApp, KafkaTools, item_ids, stop

ITEM_CODEC = codec_for("avro", Schema.of(Item), Schema.of(Item))

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


def _dead_letters(kafka: KafkaTools, topic: str, count: int) -> list[tuple[dict[str, str], bytes]]:
    return [
        (dict(read_dead_letter_headers(m.headers())), m.value() or b"")
        for m in kafka.read(topic, count, timeout=60, settle=1.0)
    ]


def test_an_oversized_record_is_dead_lettered_cut_to_fit_and_the_run_goes_on(
    kafka: KafkaTools, kafka_app: Callable[..., KafkaApp], tmp_path: Path
) -> None:
    # The case: a 999,400-byte record the input topic took; its dead letter (the
    # value plus a few KB of error headers) is larger than the producer's 1,000,000 bytes.
    app = kafka_app(
        """
        streamlets:
          numbers: {class: ktapp:Numbers, config: {count: 300}}
          big: {class: ktapp:Numbers, config: {count: 1, start: 1000, size: 999395}}
          pass: {class: ktapp:Passthrough, config: {fail_on: [1000]}}
          store: {class: ktapp:ItemFile, config: {path: ids.txt}}
        topics:
          items:
            name: "{app}-items"
            producers: [numbers.out, big.out]
            consumers: [pass.inp]
            partitions: 2
          out: {name: "{app}-out", producers: [pass.out], consumers: [store.inp]}
        """
    )
    big = ITEM_CODEC.encode(Item(id=1000, payload="x" * 999_395))
    assert len(big) == 999_400
    run = subprocess.run(
        [
            FLOW,
            "run-local",
            str(app.blueprint),
            "--kafka",
            "--bootstrap",
            app.bootstrap,
            "--config",
            str(app.config),
            "-q",
            "--run-dir",
            str(tmp_path / "run"),
        ],
        cwd=app.directory,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "crashed" not in run.stderr, run.stderr
    ids = [int(n) for n in (app.directory / "ids.txt").read_text().split()]
    assert sorted(set(ids)) == list(range(300))  # every other record delivered

    [(headers, value)] = _dead_letters(kafka, f"{app.name}.pass.dead-letters", 1)
    assert headers["__connect.errors.stage"] == "process"
    assert headers["__connect.errors.topic"] == f"{app.name}-items"
    assert int(headers["__connect.errors.offset"]) >= 0
    assert headers[VALUE_SIZE_HEADER] == "999400"
    kept = int(headers[TRUNCATED_HEADER])
    assert 990_000 < kept < 999_400 and value == big[:kept]  # cut, leaving room for headers
    assert "value cut from 999400" in run.stderr


def test_an_output_too_large_for_the_producer_follows_the_error_policy(
    kafka: KafkaTools, kafka_app: Callable[..., KafkaApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMLETS_KAFKA_PRODUCER_MESSAGE_MAX_BYTES", "100000")
    app = kafka_app(
        """
        streamlets:
          numbers: {class: ktapp:Numbers, config: {count: 20}}
          big: {class: ktapp:Numbers, config: {count: 1, start: 2000, size: 150000}}
          pass: {class: ktapp:Passthrough}
        topics:
          items:
            name: "{app}-items"
            producers: [numbers.out, big.out]
            consumers: [pass.inp]
          out: {name: "{app}-out", producers: [pass.out]}
        """
    )
    assert app.streamlet("numbers").wait(60) == 0, app.log("numbers")
    # A source's output too large: dead-lettered at the source (stage encode), exit 0.
    assert app.streamlet("big").wait(60) == 0, app.log("big")
    [(headers, value)] = _dead_letters(kafka, f"{app.name}.big.dead-letters", 1)
    assert headers["__connect.errors.stage"] == "encode"
    assert headers["__connect.errors.exception.class.name"] == "RecordTooLarge"
    message = headers["__connect.errors.exception.message"]
    assert "too large for topic 'items'" in message and "100,000" in message, message
    assert "message.max.bytes" in message
    assert len(value) < 100_000 and int(headers[VALUE_SIZE_HEADER]) > 150_000

    # A transform's output too large (its input came from a producer with a larger limit).
    kafka.produce(f"{app.name}-items", [ITEM_CODEC.encode(Item(id=100, payload="y" * 150_000))])
    process = app.streamlet("pass")
    try:
        out = kafka.read(f"{app.name}-out", 20, timeout=60, settle=1.0)
        [(headers, value)] = _dead_letters(kafka, f"{app.name}.pass.dead-letters", 1)
    finally:
        code = stop(process)
    assert code == 0, app.log("pass")
    assert sorted(item_ids(out)) == list(range(20))
    assert headers["__connect.errors.stage"] == "encode"
    assert "too large for topic 'out'" in headers["__connect.errors.exception.message"]
    assert headers[VALUE_SIZE_HEADER] == str(150_000 + 5)
    assert value == ITEM_CODEC.encode(Item(id=100, payload="y" * 150_000))[: len(value)]
