"""Keys, timestamps and headers (DESIGN §3.5) on a real broker, under `flow run-streamlet`
and `flow run-local --kafka`: Meta in, inheritance out (also for forwarded bytes), keyed
outputs on their murmur2 partitions in order, one replica per key, keyless records for a
compacted topic dead-lettered, dead letters keeping the original key and headers.

The in-process runner's tests of the same are in tests/runner/test_keys.py.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import TIMESTAMP_CREATE_TIME

from runner.kafka.dead_letters import read_dead_letter_headers
from runner.kafka.status import read_status
from runner.runtime.partitioning import murmur2, partition_for
from streamlets.codecs import codec_for
from streamlets.codecs.wire import SCHEMA_HEADER, schema_fingerprint
from streamlets.schema import Schema
from tests.integration.conftest import FLOW, KafkaApp, KafkaTools, stop
from tests.integration.keys_app import ITEM, Alert, Reading
from tests.runner.test_lifecycle import wait_for

KEYS_APP = Path(__file__).resolve().with_name("keys_app.py")

#: 2026-05-01T12:30:00.123Z in epoch milliseconds.
AT_MS = 1_777_638_600_123
AT = datetime(2026, 5, 1, 12, 30, 0, 123_000, tzinfo=UTC)
TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

#: Sensors whose keys hash to every one of 3 partitions (checked in the tests).
SENSORS = ["s-1", "s-2", "s-3", "s-4", "s-5", "s-12", "s-13"]

_READING = codec_for("avro", Schema.of(Reading))
_ALERT = codec_for("avro", Schema.of(Alert))
_ITEM_SCHEMA = Schema.of(ITEM)
_ITEM = codec_for("avro", _ITEM_SCHEMA)


def _app(make: Callable[..., KafkaApp], body: str) -> KafkaApp:
    app = make(body)
    shutil.copy(KEYS_APP, app.directory / "keys_app.py")
    return app


def _running(status: Path) -> Callable[[], bool]:
    def check() -> bool:
        found = read_status(status)
        return found is not None and found.state == "running"

    return check


def _rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _by_position(records: Iterable[Any]) -> list[Any]:
    """Records read off a topic in (partition, offset) order."""
    return sorted(records, key=lambda m: (m.partition(), m.offset()))


def test_partition_for_is_the_java_clients_murmur2() -> None:
    # Utils.murmur2 values from Apache Kafka's UtilsTest: the expected partitions below are
    # those of the Java client, not just of our own function.
    cases = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    assert {k: murmur2(k) for k in cases} == cases
    assert {partition_for(s.encode(), 3) for s in SENSORS} == {0, 1, 2}
    assert {partition_for(f"k-{s}".encode(), 3) for s in SENSORS} == {0, 1, 2}


def test_key_timestamp_and_headers_reach_meta_and_the_outputs(
    kafka: KafkaTools, kafka_app: Callable[..., KafkaApp], tmp_path: Path
) -> None:
    seen = tmp_path / "seen.jsonl"
    app = _app(
        kafka_app,
        f"""
        streamlets:
          witness: {{class: keys_app:Witness, config: {{path: {seen}}}}}
          forward: {{class: keys_app:Forward}}
        topics:
          readings: {{name: "{{app}}-readings", consumers: [witness.readings], partitions: 1}}
          alerts: {{name: "{{app}}-alerts", producers: [witness.alerts], partitions: 1}}
          items: {{name: "{{app}}-items", consumers: [forward.inp], partitions: 1}}
          forwarded: {{name: "{{app}}-forwarded", producers: [forward.out], partitions: 1}}
        """,
    )
    status = {n: tmp_path / f"{n}.status.json" for n in ("witness", "forward")}
    procs = {n: app.streamlet(n, status=status[n]) for n in status}
    try:
        for name in procs:
            wait_for(_running(status[name]), timeout=60)
        # A keyed record with a time and a trace header, then a bare one.
        kafka.produce(
            f"{app.name}-readings",
            [_READING.encode(Reading(sensor="a", seq=1))],
            headers=[("traceparent", TRACEPARENT)],
            keys=[b"sensor-7"],
            timestamp=AT_MS,
        )
        before_ms = time.time() * 1000
        kafka.produce(f"{app.name}-readings", [_READING.encode(Reading(sensor="b", seq=2))])
        after_ms = time.time() * 1000
        # Avro dicts passed on unchanged; these carry a streamlets writer's schema header too.
        items = [_ITEM.encode({"id": i, "sensor": "a"}) for i in range(3)]
        fingerprint = schema_fingerprint(_ITEM_SCHEMA).encode()
        kafka.produce(
            f"{app.name}-items",
            items,
            headers=[("traceparent", TRACEPARENT), (SCHEMA_HEADER, fingerprint)],
            keys=[b"sensor-7"] * 3,
            timestamp=AT_MS,
        )
        alerts = _by_position(kafka.read(f"{app.name}-alerts", 2, timeout=90, settle=1.0))
        forwarded = _by_position(kafka.read(f"{app.name}-forwarded", 3, timeout=90, settle=1.0))
        wait_for(lambda: len(_rows(seen)) == 2, timeout=30)
        codes = {n: stop(p) for n, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                stop(p)
    assert codes == {"witness": 0, "forward": 0}, app.log("witness") + app.log("forward")

    # What the handler saw: the key, the time and the user headers, and where it was read.
    first, second = _rows(seen)
    assert first["key"] == "sensor-7" and first["raw_key"] == b"sensor-7".hex()
    assert first["timestamp_ms"] == AT_MS and first["timestamp"] == AT.isoformat()
    assert first["headers"] == {"traceparent": TRACEPARENT.decode()}
    assert (first["topic"], first["partition"], first["offset"]) == ("readings", 0, 0)
    assert second["key"] is None and second["raw_key"] is None and second["headers"] == {}
    assert (second["partition"], second["offset"]) == (0, 1)
    # Stamped by the test's producer when it sent the record (same clock; 1 s of slack).
    assert before_ms - 1000 <= second["timestamp_ms"] <= after_ms + 1000, second

    # A new record made from the input: same key, timestamp and user headers, plus the
    # framework's schema header.
    assert len(alerts) == 2
    out = alerts[0]
    assert _ALERT.decode(out.value()) == Alert(sensor="a", seq=1)
    assert out.key() == b"sensor-7"
    assert out.timestamp() == (TIMESTAMP_CREATE_TIME, AT_MS)
    headers = out.headers() or []
    assert ("traceparent", TRACEPARENT) in headers
    assert [name for name, _ in headers].count(SCHEMA_HEADER) == 1
    assert {name for name, _ in headers} == {"traceparent", SCHEMA_HEADER}
    bare = alerts[1]
    assert bare.key() is None
    assert bare.timestamp()[1] == second["timestamp_ms"]
    assert [name for name, _ in bare.headers() or []] == [SCHEMA_HEADER]

    # Bytes forwarded unchanged keep the same key, timestamp and headers.
    assert [m.value() for m in forwarded] == items
    for m in forwarded:
        assert m.key() == b"sensor-7"
        assert m.timestamp() == (TIMESTAMP_CREATE_TIME, AT_MS)
        assert m.headers() == [("traceparent", TRACEPARENT), (SCHEMA_HEADER, fingerprint)]


def test_keyed_outputs_land_on_their_murmur2_partition_in_order(
    kafka: KafkaTools, kafka_app: Callable[..., KafkaApp]
) -> None:
    count = 40
    app = _app(
        kafka_app,
        f"""
        streamlets:
          ticks: {{class: keys_app:Ticks, config: {{sensors: {SENSORS}, count: {count}}}}}
          emitter:
            class: keys_app:Ticks
            config: {{sensors: {SENSORS}, count: {count}, keyed: true, key_prefix: "k-"}}
          rekey: {{class: keys_app:KeyBySensor}}
        topics:
          raw: {{name: "{{app}}-raw", producers: [ticks.out], consumers: [rekey.readings],
                partitions: 1}}
          keyed: {{name: "{{app}}-keyed", producers: [rekey.alerts], partitions: 3}}
          emitted: {{name: "{{app}}-emitted", producers: [emitter.out], partitions: 3}}
        """,
    )
    for source in ("ticks", "emitter"):
        assert app.streamlet(source).wait(60) == 0, app.log(source)
    rekey = app.streamlet("rekey")
    try:
        keyed = kafka.read(f"{app.name}-keyed", len(SENSORS) * count, timeout=90, settle=1.0)
    finally:
        assert stop(rekey) == 0, app.log("rekey")
    emitted = kafka.read(f"{app.name}-emitted", len(SENSORS) * count, timeout=30, settle=1.0)

    # Outlet(key="sensor") on keyless inputs; emit(key="k-" + sensor) in a source.
    for records, decode, prefix in ((keyed, _ALERT, ""), (emitted, _READING, "k-")):
        assert len(records) == len(SENSORS) * count
        by_key: dict[bytes, list[int]] = {}
        for m in _by_position(records):
            value = decode.decode(m.value())
            key = m.key()
            assert key == f"{prefix}{value.sensor}".encode()
            assert m.partition() == partition_for(key, 3), (key, m.partition())
            by_key.setdefault(key, []).append(value.seq)
        assert {k.decode() for k in by_key} == {prefix + s for s in SENSORS}
        assert all(seqs == list(range(count)) for seqs in by_key.values()), by_key
        assert {m.partition() for m in records} == {0, 1, 2}


_ASSIGNMENT = re.compile(r"^\[(note-\d)\] .*: (assigned|revoked) (.*?)(?:; committing.*)?$")
_PARTITION = re.compile(r"\[(\d+)\]")


def _assignments(log: str) -> dict[str, set[int]]:
    """The partitions each replica holds, from the assigned/revoked lines of its log."""
    held: dict[str, set[int]] = {}
    for line in log.splitlines():
        found = _ASSIGNMENT.match(line)
        if found is None:
            continue
        label, what, partitions = found.groups()
        numbers = {int(p) for p in _PARTITION.findall(partitions)}
        mine = held.setdefault(label, set())
        if what == "assigned":
            mine |= numbers
        else:
            mine -= numbers
    return held


def test_with_three_replicas_each_key_is_handled_by_one_replica_in_order(
    kafka: KafkaTools, kafka_app: Callable[..., KafkaApp], tmp_path: Path
) -> None:
    count, go, seen = 30, tmp_path / "go", tmp_path / "seen"
    seen.mkdir()
    app = _app(
        kafka_app,
        f"""
        streamlets:
          ticks:
            class: keys_app:Ticks
            config: {{sensors: {SENSORS}, count: {count}, keyed: true, go_file: {go}}}
          note: {{class: keys_app:Note, replicas: 3, config: {{dir: {seen}}}}}
        topics:
          ticks: {{name: "{{app}}-ticks", producers: [ticks.out], consumers: [note.readings],
                  partitions: 3}}
          alerts: {{name: "{{app}}-alerts", producers: [note.alerts], partitions: 3}}
        """,
    )
    output = tmp_path / "run-local.log"
    with output.open("wb") as out:
        supervisor = subprocess.Popen(
            [
                FLOW,
                "run-local",
                str(app.blueprint),
                "--kafka",
                "--bootstrap",
                app.bootstrap,
                "--config",
                str(app.config),
                "--run-dir",
                str(tmp_path / "run"),
            ],
            cwd=app.directory,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # The source waits for the go file: records flow once each replica holds one
        # partition, so no rebalance moves a key while its records are handled.
        held: dict[str, set[int]] = {}

        def one_partition_each() -> bool:
            held.clear()
            held.update(_assignments(output.read_text(encoding="utf-8", errors="replace")))
            each = sorted(len(p) for p in held.values())
            return each == [1, 1, 1] and set().union(*held.values()) == {0, 1, 2}

        wait_for(one_partition_each, timeout=120)
        go.touch()
        code = supervisor.wait(180)
    finally:
        if supervisor.poll() is None:
            stop(supervisor, signal.SIGINT, timeout=60)
    log = output.read_text(encoding="utf-8", errors="replace")
    assert code == 0, log

    files = sorted(seen.glob("*.jsonl"))
    assert len(files) == 3, files  # each replica handled records
    handled_by: dict[str, set[int]] = {}
    for path in files:
        by_sensor: dict[str, list[int]] = {}
        for row in _rows(path):
            sensor = row["sensor"]
            assert row["key"] == sensor
            assert row["partition"] == partition_for(sensor.encode(), 3)
            by_sensor.setdefault(sensor, []).append(row["seq"])
            handled_by.setdefault(sensor, set()).add(row["pid"])
        # In order, each record once.
        assert all(seqs == list(range(count)) for seqs in by_sensor.values()), by_sensor
    assert set(handled_by) == set(SENSORS)
    assert all(len(pids) == 1 for pids in handled_by.values()), handled_by

    # The outputs inherited their input's key: on its partition, in order.
    alerts = kafka.read(f"{app.name}-alerts", len(SENSORS) * count, timeout=30, settle=1.0)
    assert len(alerts) == len(SENSORS) * count
    by_key: dict[bytes, list[int]] = {}
    for m in _by_position(alerts):
        key = m.key()
        assert key == _ALERT.decode(m.value()).sensor.encode()
        assert m.partition() == partition_for(key, 3)
        by_key.setdefault(key, []).append(_ALERT.decode(m.value()).seq)
    assert all(seqs == list(range(count)) for seqs in by_key.values()), by_key


def test_a_keyless_record_for_a_compacted_topic_is_dead_lettered_not_produced(
    kafka: KafkaTools, kafka_app: Callable[..., KafkaApp], tmp_path: Path
) -> None:
    app = _app(
        kafka_app,
        """
        streamlets:
          relay: {class: keys_app:Relay}
        topics:
          readings: {name: "{app}-readings", consumers: [relay.readings], partitions: 1}
          latest:
            name: "{app}-latest"
            producers: [relay.alerts]
            partitions: 1
            config: {cleanup.policy: compact}
        """,
    )
    status = tmp_path / "relay.status.json"
    relay = app.streamlet("relay", status=status)
    keys: list[bytes | None] = [b"s-1", None, b"s-2", None, b"s-3"]
    values = [_READING.encode(Reading(sensor=f"s-{i}", seq=i)) for i in range(len(keys))]
    try:
        wait_for(_running(status), timeout=60)
        kafka.produce(f"{app.name}-readings", values, keys=keys)
        dead = kafka.read(f"{app.name}.relay.dead-letters", 2, timeout=90, settle=1.0)
        latest = kafka.read(f"{app.name}-latest", 3, timeout=30, settle=2.0)
        code = stop(relay)
    finally:
        if relay.poll() is None:
            stop(relay)
    assert code == 0, app.log("relay")

    # The keyed records are produced; the keyless ones are not.
    assert [m.key() for m in _by_position(latest)] == [b"s-1", b"s-2", b"s-3"]
    assert [_ALERT.decode(m.value()).seq for m in _by_position(latest)] == [0, 2, 4]

    assert len(dead) == 2
    assert sorted(m.value() for m in dead) == [values[1], values[3]]  # the inputs, as they were
    for m in dead:
        assert m.key() is None
        headers = read_dead_letter_headers(m.headers())
        assert headers["__connect.errors.stage"] == "encode"
        assert headers["__connect.errors.exception.class.name"] == "KeylessRecord"
        message = headers["__connect.errors.exception.message"]
        assert "'latest' is compacted" in message, message
        assert "key='field'" in message and "emit(record, key=" in message, message
        assert headers["__connect.errors.topic"] == f"{app.name}-readings"
    final = read_status(status)
    assert final is not None and final.stats.dead_lettered == 2


def test_dead_letters_keep_the_original_key_headers_and_timestamp(
    kafka: KafkaTools, kafka_app: Callable[..., KafkaApp], tmp_path: Path
) -> None:
    app = _app(
        kafka_app,
        f"""
        streamlets:
          witness: {{class: keys_app:Witness, config: {{path: {tmp_path / "seen.jsonl"}}}}}
        topics:
          readings: {{name: "{{app}}-readings", consumers: [witness.readings], partitions: 1}}
          alerts: {{name: "{{app}}-alerts", producers: [witness.alerts], partitions: 1}}
        """,
    )
    status = tmp_path / "witness.status.json"
    witness = app.streamlet("witness", status=status)
    garbage = b"\xff\xfe not avro"
    try:
        wait_for(_running(status), timeout=60)
        kafka.produce(
            f"{app.name}-readings",
            [garbage],
            headers=[("traceparent", TRACEPARENT), ("tenant", b"t-1")],
            keys=[b"sensor-9"],
            timestamp=AT_MS,
        )
        dead = kafka.read(f"{app.name}.witness.dead-letters", 1, timeout=90, settle=1.0)
        code = stop(witness)
    finally:
        if witness.poll() is None:
            stop(witness)
    assert code == 0, app.log("witness")
    (letter,) = dead
    assert letter.value() == garbage
    assert letter.key() == b"sensor-9"
    assert letter.timestamp() == (TIMESTAMP_CREATE_TIME, AT_MS)
    headers = letter.headers() or []
    assert headers[:2] == [("traceparent", TRACEPARENT), ("tenant", b"t-1")]  # first, as they were
    errors = read_dead_letter_headers(headers)
    assert errors["__connect.errors.stage"] == "decode"
    assert errors["__connect.errors.topic"] == f"{app.name}-readings"
    assert (errors["__connect.errors.partition"], errors["__connect.errors.offset"]) == ("0", "0")
