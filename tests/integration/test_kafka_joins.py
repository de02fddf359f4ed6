"""Joins (DESIGN §9) on a real broker under `flow run-streamlet`: the library Join (left
and inner, the left one with two replicas) through a script of orders and customers with a
stream record before its table record, a tombstone and an update; tombstones on a stream
inlet dead-lettered; the range assignor giving each replica the same partition of both
topics; GlobalJoin with two replicas, each holding every key (bootstrapped from the
beginning and updated while running).

The same scenarios on the in-process runner are in tests/runner/test_joins.py. Records go
on the topics one at a time, each once the joins have taken the one before: Kafka fetches
the two topics independently, so only that fixes which of a table's and a stream's
records a join sees first.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from runner.kafka.dead_letters import read_dead_letter_headers
from runner.kafka.status import read_status
from runner.runtime.partitioning import partition_for
from streamlets.codecs import codec_for
from streamlets.codecs.wire import SCHEMA_HEADER, schema_fingerprint
from streamlets.library.join import join_result_schema
from streamlets.schema import Schema
from tests.integration.conftest import KafkaApp, KafkaTools, stop
from tests.runner.joins_app import SCRIPT, Customer, Order, expected_join
from tests.runner.test_lifecycle import wait_for

pytestmark = pytest.mark.slow

JOINS_APP = Path(__file__).resolve().parents[1] / "runner" / "joins_app.py"

_ORDER = Schema.of(Order)
_CUSTOMER = Schema.of(Customer)
_JOINED = Schema.of(join_result_schema(_ORDER, _CUSTOMER))
_CODECS = {s: codec_for("avro", s, s) for s in (_ORDER, _CUSTOMER, _JOINED)}


def _app(make: Callable[..., KafkaApp], body: str) -> KafkaApp:
    app = make(body)
    shutil.copy(JOINS_APP, app.directory / "joins_app.py")
    return app


def _produce(
    kafka: KafkaTools, topic: str, records: Sequence[tuple[str, Any, int]], schema: Schema
) -> None:
    """Write (key, record or None for a tombstone, timestamp) to ``topic``, each on the
    partition its key hashes to (murmur2, as our producers do)."""
    producer = Producer(
        {
            "bootstrap.servers": kafka.bootstrap,
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
        }
    )
    headers = [(SCHEMA_HEADER, schema_fingerprint(schema).encode())]
    for key, record, at in records:
        value = None if record is None else _CODECS[schema].encode(record)
        producer.produce(topic, value, key.encode(), headers=headers, timestamp=at)
    assert producer.flush(30) == 0


def _records_in(status: Path) -> int:
    found = read_status(status)
    return 0 if found is None else found.stats.records_in


def _assignments(log: str) -> list[str]:
    """The partitions of each assignment a process logged, as 'topic[p]' strings."""
    return [
        line.split("assigned ", 1)[1].strip() for line in log.splitlines() if ": assigned " in line
    ]


def _joined(kafka: KafkaTools, topic: str, count: int) -> list[tuple[str, int, Customer | None]]:
    rows = [
        _CODECS[_JOINED].decode(m.value()) for m in kafka.read(topic, count, timeout=90, settle=1.0)
    ]
    return [
        (
            row["key"],
            row["stream"]["order"],
            None if row["table"] is None else Customer(**row["table"]),
        )
        for row in rows
    ]


JOINS = """
streamlets:
  left:
    class: streamlets.library:Join
    config: {stream: "joins_app:Order", table: "joins_app:Customer", how: left}
    replicas: 2
  inner:
    class: streamlets.library:Join
    config: {stream: "joins_app:Order", table: "joins_app:Customer", how: inner}
topics:
  orders:
    name: "{app}-orders"
    consumers: [left.stream, inner.stream]
    partitions: 2
  customers:
    name: "{app}-customers"
    consumers: [left.table, inner.table]
    partitions: 2
    config: {cleanup.policy: compact}
  left-joined: {name: "{app}-left", producers: [left.joined], partitions: 1}
  inner-joined: {name: "{app}-inner", producers: [inner.joined], partitions: 1}
"""


def test_a_table_join_with_tombstones_and_late_table_records_on_kafka(
    kafka: KafkaTools, kafka_app: Callable[..., KafkaApp], tmp_path: Path
) -> None:
    keys = {key for _, key, _, _ in SCRIPT}
    assert {partition_for(k.encode(), 2) for k in keys} == {0, 1}  # both replicas work
    app = _app(kafka_app, JOINS)
    status = {
        ("left", 0): tmp_path / "left-0.json",
        ("left", 1): tmp_path / "left-1.json",
        ("inner", 0): tmp_path / "inner-0.json",
    }
    procs = {
        (name, replica): app.streamlet(name, replica=replica, status=path)
        for (name, replica), path in status.items()
    }
    try:
        # The group is settled once each left replica holds one partition of each topic.
        def settled() -> bool:
            last = [_assignments(app.log("left", r)) for r in (0, 1)]
            return all(a and a[-1].count("[") == 2 for a in last)

        wait_for(settled, timeout=120)
        wait_for(lambda: bool(_assignments(app.log("inner", 0))), timeout=60)
        for replica in (0, 1):
            # The range assignor: partition p of both topics on the same replica.
            numbers = set(re.findall(r"\[(\d+)\]", _assignments(app.log("left", replica))[-1]))
            assert len(numbers) == 1, app.log("left", replica)

        def taken(count: int) -> Callable[[], bool]:
            """Whether both joins have taken ``count`` records (left: its replicas together)."""

            def check() -> bool:
                left = _records_in(status[("left", 0)]) + _records_in(status[("left", 1)])
                return left >= count and _records_in(status[("inner", 0)]) >= count

            return check

        for handled, (kind, key, record, at) in enumerate(SCRIPT, start=1):
            if kind == "order":
                _produce(kafka, f"{app.name}-orders", [(key, record, at)], _ORDER)
            else:
                _produce(kafka, f"{app.name}-customers", [(key, record, at)], _CUSTOMER)
            wait_for(taken(handled), timeout=60)
        left = _joined(kafka, f"{app.name}-left", len(expected_join("left")))
        inner = _joined(kafka, f"{app.name}-inner", len(expected_join("inner")))
        # A tombstone on the stream inlet is no record to join: dead-lettered.
        _produce(kafka, f"{app.name}-orders", [("alice", None, 9_000)], _ORDER)
        (dead,) = kafka.read(f"{app.name}.inner.dead-letters", 1, timeout=60)
        codes = {n: stop(p) for n, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    assert set(codes.values()) == {0}, {n: app.log(*n) for n in procs}

    def by_order(rows: list[tuple[str, int, Any]]) -> list[tuple[str, int, Any]]:
        return sorted(rows, key=lambda row: row[1])

    assert by_order(left) == by_order(expected_join("left"))
    assert by_order(inner) == by_order(expected_join("inner"))
    assert dead.value() is None and dead.key() == b"alice"
    headers = read_dead_letter_headers(dead.headers())
    assert headers["__connect.errors.stage"] == "decode"
    assert headers["__connect.errors.exception.class.name"] == "UnexpectedTombstone"
    assert "not a table" in headers["__connect.errors.exception.message"]


GLOBAL = """
streamlets:
  join:
    class: streamlets.library:GlobalJoin
    config: {stream: "joins_app:Order", table: "joins_app:Customer"}
    replicas: 2
  forget: {class: "joins_app:Forget"}
topics:
  orders: {name: "{app}-orders", consumers: [join.stream], partitions: 2}
  customers:
    name: "{app}-customers"
    producers: [forget.customers]
    consumers: [join.table]
    partitions: 1
    config: {cleanup.policy: compact}
  forget: {name: "{app}-forget", consumers: [forget.requests], partitions: 1}
  joined: {name: "{app}-joined", producers: [join.joined], partitions: 1}
"""

KEYS = [f"k{i}" for i in range(8)]


def test_a_global_table_with_two_replicas_on_kafka(
    kafka: KafkaTools, kafka_app: Callable[..., KafkaApp], tmp_path: Path
) -> None:
    assert {partition_for(k.encode(), 2) for k in KEYS} == {0, 1}
    app = _app(kafka_app, GLOBAL)
    # The table is there before the replicas start: each reads it from the beginning.
    _produce(
        kafka,
        f"{app.name}-customers",
        [(k, Customer(name=k, city="x"), 1_000) for k in KEYS],
        _CUSTOMER,
    )
    status = {r: tmp_path / f"join-{r}.json" for r in (0, 1)}
    procs = {r: app.streamlet("join", replica=r, status=status[r]) for r in (0, 1)}
    forget = app.streamlet("forget", status=tmp_path / "forget.json")
    try:
        wait_for(lambda: all(_assignments(app.log("join", r)) for r in (0, 1)), timeout=120)
        wait_for(lambda: bool(_assignments(app.log("forget"))), timeout=60)
        # Both replicas replayed the whole table before taking a stream record.
        wait_for(lambda: all(_records_in(status[r]) >= len(KEYS) for r in (0, 1)), timeout=60)
        orders = [(k, Order(order=i, amount=1.0), 2_000) for i, k in enumerate(KEYS)]
        _produce(kafka, f"{app.name}-orders", orders, _ORDER)
        first = _joined(kafka, f"{app.name}-joined", len(KEYS))
        # While running: a delete (a tombstone the forget streamlet writes) and a new key
        # reach every replica.
        _produce(
            kafka, f"{app.name}-forget", [("k1", Customer(name="k1", city="-"), 3_000)], _CUSTOMER
        )
        _produce(
            kafka,
            f"{app.name}-customers",
            [("k9", Customer(name="k9", city="y"), 3_000)],
            _CUSTOMER,
        )
        # Each replica read the whole table (8 + 2 records) and its share of the 8 orders.
        wait_for(
            lambda: sum(_records_in(status[r]) for r in (0, 1)) >= 2 * (len(KEYS) + 2) + len(KEYS),
            timeout=60,
        )
        more = [
            ("k1", Order(order=11, amount=1.0), 4_000),
            ("k9", Order(order=19, amount=1.0), 4_000),
        ]
        more += [
            (k, Order(order=100 + i, amount=1.0), 4_000) for i, k in enumerate(KEYS) if k != "k1"
        ]
        _produce(kafka, f"{app.name}-orders", more, _ORDER)
        rows = _joined(kafka, f"{app.name}-joined", len(KEYS) + len(more) - 1)
        table = kafka.read(f"{app.name}-customers", len(KEYS) + 2, timeout=30)
        codes = [stop(p) for p in [*procs.values(), forget]]
    finally:
        for p in [*procs.values(), forget]:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert codes == [0, 0, 0], [app.log("join", r) for r in (0, 1)] + [app.log("forget")]
    (tombstone,) = [m for m in table if m.value() is None]
    assert tombstone.key() == b"k1"  # outlet.tombstone(key): a null value on Kafka
    assert sorted(key for key, _, _ in first) == KEYS
    assert all(c is not None and c.name == key for key, _, c in first)
    later = [row for row in rows if row[1] >= 11]
    # Inner: k1 was deleted; k9 came while running; the others on both partitions.
    assert sorted(key for key, _, _ in later) == sorted(["k9", *[k for k in KEYS if k != "k1"]])
    assert {partition_for(key.encode(), 2) for key, _, _ in later} == {0, 1}
    assert all(c is not None and c.name == key for key, _, c in later)
