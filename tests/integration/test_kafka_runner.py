"""`flow run-streamlet` against a real broker: delivery, dead letters, replicas, shutdown."""

from __future__ import annotations

import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from confluent_kafka.admin import NewTopic

from runner.kafka.dead_letters import read_dead_letter_headers
from runner.kafka.status import read_status
from tests.integration.conftest import (
    KafkaApp,
    KafkaTools,
    item_ids,
    listening_addresses,
    stop,
)

PIPELINE = """
streamlets:
  numbers:
    class: ktapp:Numbers
    config: {count: 200}
  pass:
    class: ktapp:Passthrough
    config: {fail_on: [7, 8]}
    replicas: 2
topics:
  items:
    producers: [numbers.out]
    consumers: [pass.inp]
    partitions: 3
  passed:
    name: "{app}-passed"
    producers: [pass.out]
"""


def test_pipeline_on_kafka_with_replicas_dead_letters_and_graceful_restart(
    kafka: KafkaTools, kafka_app: Callable[..., KafkaApp]
) -> None:
    app = kafka_app(PIPELINE)
    # The source runs to its end, creating its topics from the blueprint, then exits 0.
    source = app.streamlet("numbers")
    assert source.wait(60) == 0, app.log("numbers")
    # Topic 'items' sets no name: the Kafka topic is its key, with the blueprint's partitions.
    assert kafka.partitions("items") == 3
    # Poison: bytes that are not Avro at all.
    kafka.produce("items", [b"\xff\xfe not avro", b"\x00"], headers=[("trace", b"t-1")])

    status = [app.directory / f"pass-{i}.json" for i in range(2)]
    replicas = [app.streamlet("pass", replica=i, status=status[i]) for i in range(2)]
    try:
        passed = kafka.read(f"{app.name}-passed", 198, timeout=90)
        dead = kafka.read(f"{app.name}.pass.dead-letters", 4, timeout=30)
        # A rolling stop: replica 1 leaves, replica 0 takes over its partitions, then leaves.
        # (Tansu can keep a departed leader in the group when members leave at the same
        # moment; real Kafka does not, but a rolling stop is what the test needs here.)
        codes = [stop(replicas[1])]
        deadline = time.monotonic() + 30
        while app.log("pass", 0).count("assigned") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        codes.append(stop(replicas[0]))
    finally:
        for p in replicas:
            if p.poll() is None:
                stop(p)
    assert codes == [0, 0], app.log("pass", 0) + app.log("pass", 1)
    ids = item_ids(passed)
    assert sorted(ids) == [i for i in range(200) if i not in (7, 8)]
    # Both replicas took partitions of the group '<app>.pass'.
    for i in range(2):
        assert "assigned" in app.log("pass", i), app.log("pass", i)
    in_counts = [read_status(s).stats.records_in for s in status]  # type: ignore[union-attr]
    assert sum(in_counts) >= 202 and all(n > 0 for n in in_counts), in_counts

    assert len(dead) == 4
    by_stage: dict[str, list[dict[str, str]]] = {}
    for m in dead:
        headers = read_dead_letter_headers(m.headers())
        by_stage.setdefault(headers["__connect.errors.stage"], []).append(dict(headers))
        assert headers["__connect.errors.topic"] == "items"
        assert headers["__connect.errors.connector.name"] == f"{app.name}.pass"
        assert int(headers["__connect.errors.offset"]) >= 0
        assert int(headers["__connect.errors.partition"]) in (0, 1, 2)
        assert "Traceback" in headers["__connect.errors.exception.stacktrace"]
    assert len(by_stage["process"]) == 2
    assert {h["__connect.errors.exception.class.name"] for h in by_stage["process"]} == {
        "ValueError"
    }
    assert all("poison" in h["__connect.errors.exception.message"] for h in by_stage["process"])
    assert len(by_stage["decode"]) == 2
    garbage = sorted(m.value() for m in dead if m.value() in (b"\xff\xfe not avro", b"\x00"))
    assert garbage == [b"\x00", b"\xff\xfe not avro"]  # the original bytes, as they were
    assert all(("trace", b"t-1") in (m.headers() or []) for m in dead if m.value() in garbage)

    # Restart after the graceful stop: resumes from committed offsets, no duplicates.
    more = app.streamlet("numbers", "--set", "numbers.start=1000", "--set", "numbers.count=50")
    assert more.wait(60) == 0, app.log("numbers")
    again = app.streamlet("pass", replica=0)
    try:
        passed = kafka.read(f"{app.name}-passed", 248, timeout=60, settle=2.0)
    finally:
        assert stop(again) == 0, app.log("pass", 0)
    ids = item_ids(passed)
    assert len(ids) == 248, "a graceful stop must not cause duplicates"
    assert set(ids) == {i for i in range(200) if i not in (7, 8)} | set(range(1000, 1050))


def test_topic_with_too_few_partitions_is_reported(
    kafka: KafkaTools, kafka_app: Callable[..., KafkaApp]
) -> None:
    app = kafka_app(
        """
        streamlets:
          numbers: {class: ktapp:Numbers, config: {count: 5}}
        topics:
          items:
            name: "{app}-items"
            producers: [numbers.out]
            partitions: 3
        """
    )
    admin = kafka.admin()
    for future in admin.create_topics([NewTopic(f"{app.name}-items", 1, 1)]).values():
        future.result()
    source = app.streamlet("numbers")
    assert source.wait(60) == 1
    log = app.log("numbers")
    assert f"'{app.name}-items'" in log and "exists with 1 partition(s)" in log, log
    assert "Traceback" not in log


def test_fail_policy_stops_the_streamlet_without_committing(
    kafka: KafkaTools, kafka_app: Callable[..., KafkaApp]
) -> None:
    app = kafka_app(
        """
        streamlets:
          numbers: {class: ktapp:Numbers, config: {count: 20}}
          pass:
            class: ktapp:Passthrough
            config: {fail_on: [3]}
            on_error: fail
        topics:
          items:
            name: "{app}-items"
            producers: [numbers.out]
            consumers: [pass.inp]
          out:
            name: "{app}-out"
            producers: [pass.out]
        """
    )
    assert app.streamlet("numbers").wait(60) == 0, app.log("numbers")
    process = app.streamlet("pass")
    assert process.wait(60) == 1
    log = app.log("pass")
    assert "failed to process a record" in log and "item 3 is poison" in log, log
    assert "Traceback" not in log
    # Nothing was committed: a restart would see the failing record again.
    assert all(o < 0 for o in kafka.committed(f"{app.name}.pass", f"{app.name}-items").values())


def test_sigkill_mid_stream_loses_nothing(
    kafka: KafkaTools, kafka_app: Callable[..., KafkaApp], tmp_path: Path
) -> None:
    count = 1500
    app = kafka_app(
        f"""
        streamlets:
          numbers: {{class: ktapp:Numbers, config: {{count: {count}}}}}
          pass:
            class: ktapp:Passthrough
            config: {{delay: 0.002}}
        topics:
          items:
            name: "{{app}}-items"
            producers: [numbers.out]
            consumers: [pass.inp]
            partitions: 3
          out:
            name: "{{app}}-out"
            producers: [pass.out]
        """
    )
    assert app.streamlet("numbers").wait(60) == 0, app.log("numbers")
    first = app.streamlet("pass", "--commit-interval", "0.2")
    try:
        seen = kafka.read(f"{app.name}-out", 300, timeout=60)
        assert len(seen) < count, "the streamlet finished before it could be killed"
    finally:
        stop(first, signal.SIGKILL)
    assert first.returncode == -signal.SIGKILL
    committed = kafka.committed(f"{app.name}.pass", f"{app.name}-items")
    assert sum(max(o, 0) for o in committed.values()) < count  # really killed mid-stream
    second = app.streamlet("pass")
    try:
        records = kafka.read(f"{app.name}-out", count, timeout=90)
        deadline = time.monotonic() + 60
        ids = set(item_ids(records))
        while len(ids) < count and time.monotonic() < deadline:
            records = kafka.read(f"{app.name}-out", len(records) + 1, timeout=5)
            ids = set(item_ids(records))
    finally:
        assert stop(second) == 0, app.log("pass")
    assert ids == set(range(count)), f"lost {sorted(set(range(count)) - ids)[:20]}"


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_health_and_readiness_endpoints(
    kafka: KafkaTools, kafka_app: Callable[..., KafkaApp]
) -> None:
    app = kafka_app(
        """
        streamlets:
          numbers: {class: ktapp:Numbers, config: {count: 50}}
          pass:
            class: ktapp:Passthrough
            config: {fail_on: [5]}
        topics:
          items:
            name: "{app}-items"
            producers: [numbers.out]
            consumers: [pass.inp]
          out:
            name: "{app}-out"
            producers: [pass.out]
        """
    )
    assert app.streamlet("numbers").wait(60) == 0, app.log("numbers")
    status_file = app.directory / "pass.json"
    process = app.streamlet("pass", "--metrics-port", "0", status=status_file)
    try:
        deadline = time.monotonic() + 30
        port = None
        while port is None and time.monotonic() < deadline:
            status = read_status(status_file)
            port = status.metrics_port if status is not None else None
            time.sleep(0.1)
        assert port, app.log("pass")
        # Loopback only unless --metrics-host says otherwise (flow deploy does, for pods).
        assert listening_addresses(port) == {"127.0.0.1"}
        base = f"http://127.0.0.1:{port}"
        assert _get(f"{base}/healthz")[0] == 200
        kafka.read(f"{app.name}-out", 49, timeout=60)
        deadline = time.monotonic() + 30
        while _get(f"{base}/readyz")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _get(f"{base}/readyz") == (200, "ok\n")
        deadline = time.monotonic() + 30
        labels = f'app="{app.name}",replica="0",streamlet="pass"'
        while time.monotonic() < deadline:
            code, text = _get(f"{base}/metrics")
            if f"streamlets_records_in_total{{{labels}}} 50.0" in text:
                break
            time.sleep(0.2)
        assert code == 200
        assert f"streamlets_records_in_total{{{labels}}} 50.0" in text, text
        assert f"streamlets_records_out_total{{{labels}}} 49.0" in text
        errors = f'app="{app.name}",replica="0",stage="process",streamlet="pass"'
        assert f"streamlets_record_errors_total{{{errors}}} 1.0" in text
        assert f"streamlets_dead_letters_total{{{labels}}} 1.0" in text
        assert "streamlets_process_latency_seconds_bucket" in text
        assert "streamlets_commit_latency_seconds_count" in text
        assert _get(f"{base}/nope")[0] == 404
    finally:
        assert stop(process) == 0, app.log("pass")
