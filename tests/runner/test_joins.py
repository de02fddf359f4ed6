"""Joins (DESIGN §9) on the in-process runner and the testkit: table inlets kept up to date
(tombstones delete), lookups from handlers, stream records that come before their table
record (left: the table side empty, inner: dropped), the library Join and GlobalJoin,
global tables with replicas, tables kept in --state-dir, and a join checked against a
brute-force computation over interleaved table and stream records (hypothesis).

The same scenarios on the embedded broker are in tests/integration/test_kafka_joins.py.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from blueprint import verify
from runner.cli import cli
from runner.local import LocalRunner
from runner.runtime.messages import Message
from runner.runtime.partitioning import partition_for
from runner.runtime.tables import in_time_order
from runner.testkit import Record, run_blueprint, run_streamlet
from streamlets import Inlet, Meta, Outlet, Streamlet
from streamlets.library import Join
from tests.runner.joins_app import (
    ALICE,
    BOB,
    SCRIPT,
    Customer,
    Order,
    expected_join,
    read_joined,
)

JOINS_APP = Path(__file__).resolve().with_name("joins_app.py")


class Enriched(BaseModel):
    order: int
    customer: str
    name: str | None


class Enrich(Streamlet):
    """The code API: a stream inlet, a table inlet, a lookup in process()."""

    orders = Inlet(Order)
    customers = Inlet(Customer, table=True)
    out = Outlet(Enriched)

    def process(self, order: Order, meta: Meta) -> Enriched:
        customer = self.customers.get(str(meta.key))
        return Enriched(
            order=order.order,
            customer=str(meta.key),
            name=None if customer is None else customer.name,
        )


class AsyncEnrich(Enrich):
    async def process(self, order: Order, meta: Meta) -> Enriched:  # type: ignore[override]
        await asyncio.sleep(0)
        customer = self.customers.get(str(meta.key))
        return Enriched(
            order=order.order,
            customer=str(meta.key),
            name=None if customer is None else customer.name,
        )


def script_inputs() -> dict[str, list[Record]]:
    """SCRIPT as testkit inputs of the inlets ``orders`` and ``customers``."""
    orders, customers = [], []
    for kind, key, record, at in SCRIPT:
        target = orders if kind == "order" else customers
        target.append(Record(record, key=key, timestamp=at))
    return {"orders": orders, "customers": customers}


@pytest.mark.parametrize("streamlet", [Enrich, AsyncEnrich])
def test_a_table_inlet_is_looked_up_with_tombstones_and_late_table_records(
    streamlet: type[Enrich],
) -> None:
    result = run_streamlet(streamlet, script_inputs())
    assert result.error is None and result.dead_letters == []
    got = [(e.customer, e.order, e.name) for e in result.outputs["out"]]
    want = [(k, o, None if c is None else c.name) for k, o, c in expected_join("left")]
    assert got == want
    # The table is state of the inlet's name: c1 was deleted, c2 moved.
    assert result.state == {"customers": {"bob": Customer(name="Bob", city="Paris")}}
    # Outputs keep the stream record's key and timestamp.
    orders_at = {r.order: at for kind, _, r, at in SCRIPT if kind == "order"}
    for record in result.records["out"]:
        assert record.key == record.value.customer
        assert record.timestamp is not None
        assert int(record.timestamp.timestamp() * 1000) == orders_at[record.value.order]


def test_a_seeded_table_is_looked_up_and_a_tombstone_deletes_a_seeded_key() -> None:
    result = run_streamlet(
        Enrich,
        {
            "customers": [Record(None, key="c1", timestamp=5)],
            "orders": [
                Record(Order(order=i, amount=1.0), key=k, timestamp=9)
                for i, k in ((1, "c1"), (2, "c2"))
            ],
        },
        state={"customers": {"c1": ALICE, "c2": BOB}},
    )
    assert [(e.order, e.name) for e in result.outputs["out"]] == [(1, None), (2, "Bob")]
    assert result.state == {"customers": {"c2": BOB}}


class Passthrough(Streamlet):
    orders = Inlet(Order)
    out = Outlet(Order)

    def process(self, order: Order) -> Order:
        return order


class AsyncPassthrough(Passthrough):
    async def process(self, order: Order) -> Order:  # type: ignore[override]
        return order


@pytest.mark.parametrize("streamlet", [Passthrough, AsyncPassthrough, Enrich])
def test_a_tombstone_on_an_inlet_that_is_not_a_table_is_dead_lettered_with_a_clear_message(
    streamlet: type[Streamlet],
) -> None:
    result = run_streamlet(
        streamlet,
        {"orders": [Record(None, key="c1"), Record(Order(order=1, amount=1.0), key="c1")]},
    )
    assert result.error is None
    assert len(result.outputs["out"]) == 1  # the record after it went through
    (dead,) = result.dead_letters
    assert dead.stage == "decode" and dead.inlet == "orders"
    assert dead.error_class == "UnexpectedTombstone"
    assert "got a tombstone" in dead.error_message and "not a table" in dead.error_message
    assert "table=True" in dead.error_message
    row = dead.as_json()
    assert row["value"] is None and row["value_encoding"] is None and row["key"] == "c1"


def test_a_keyless_table_record_follows_the_error_policy_with_stage_state() -> None:
    result = run_streamlet(Enrich, {"customers": [ALICE, Record(BOB, key="c2")]})
    (dead,) = result.dead_letters
    assert dead.stage == "state" and dead.inlet == "customers"
    assert "without a key" in dead.error_message and "key=" in dead.error_message
    assert result.state == {"customers": {"c2": BOB}}
    failed = run_streamlet(Enrich, {"customers": [ALICE]}, on_error="fail")
    assert failed.error is not None and "failed to state a record" in str(failed.error)


def test_a_streamlet_writes_tombstones_with_outlet_tombstone() -> None:
    class Deletes(Streamlet):
        orders = Inlet(Order)
        customers = Outlet(Customer)

        def process(self, order: Order, meta: Meta) -> Any:
            if order.amount < 0:
                return self.customers.tombstone(str(meta.key), headers={"why": "refund"})
            return self.customers.emit(ALICE, key="c1")

    result = run_streamlet(
        Deletes,
        {
            "orders": [
                Record(Order(order=1, amount=1.0), key="x", timestamp=1_000),
                Record(Order(order=2, amount=-1.0), key="c7", timestamp=2_000),
            ]
        },
    )
    assert result.outputs["customers"] == [ALICE, None]
    tombstone = result.records["customers"][1]
    assert tombstone.value is None and tombstone.key == "c7"
    assert tombstone.headers == {"why": b"refund"}
    assert tombstone.timestamp is not None and tombstone.timestamp.timestamp() == 2.0


# -- the library Join through flow run-local -------------------------------------------------

PIPELINE = """
name: shop
streamlets:
  events: {class: joins_app:ShopEvents}
  left:
    class: streamlets.library:Join
    config: {stream: "joins_app:Order", table: "joins_app:Customer", how: left}
    replicas: 2
  inner:
    class: streamlets.library:Join
    config: {stream: "joins_app:Order", table: "joins_app:Customer", how: inner}
  left-file: {class: joins_app:JoinedFile, config: {path: out/left.jsonl}}
  inner-file: {class: joins_app:JoinedFile, config: {path: out/inner.jsonl}}
topics:
  orders:
    producers: [events.orders]
    consumers: [left.stream, inner.stream]
    partitions: 3
  customers:
    producers: [events.customers]
    consumers: [left.table, inner.table]
    partitions: 3
    config: {cleanup.policy: compact}
  left-joined: {producers: [left.joined], consumers: [left-file.joined]}
  inner-joined: {producers: [inner.joined], consumers: [inner-file.joined]}
"""


def write_app(directory: Path, blueprint: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(JOINS_APP, directory / "joins_app.py")
    (directory / "out").mkdir(exist_ok=True)
    path = directory / "blueprint.yaml"
    path.write_text(textwrap.dedent(blueprint).lstrip(), encoding="utf-8")
    return path


def by_order(rows: list[tuple[str, int, Customer | None]]) -> list[tuple[str, int, Any]]:
    return sorted(rows, key=lambda row: row[1])


def test_the_library_join_under_flow_run_local_left_and_inner(tmp_path: Path) -> None:
    path = write_app(tmp_path / "app", PIPELINE)
    outcome = CliRunner().invoke(
        cli, ["run-local", str(path), "-q", "--run-dir", str(tmp_path / "run")]
    )
    assert outcome.exit_code == 0, outcome.output
    out = tmp_path / "app" / "out"
    assert by_order(read_joined(out / "left.jsonl")) == by_order(expected_join("left"))
    assert by_order(read_joined(out / "inner.jsonl")) == by_order(expected_join("inner"))
    # The outputs keep the stream record's key and timestamp.
    orders_at = {r.order: at for kind, _, r, at in SCRIPT if kind == "order"}
    for line in (out / "left.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert row["meta_key"] == row["key"]
        assert row["at"] == orders_at[row["stream"]["order"]]
    assert not (tmp_path / "run" / "dead-letters.jsonl").exists()


def test_a_join_keeps_its_table_in_the_state_dir_for_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blueprint = """
    name: later
    streamlets:
      join:
        class: streamlets.library:Join
        config: {stream: "joins_app:Order", table: "joins_app:Customer"}
    topics:
      orders: {consumers: [join.stream], partitions: 2}
      customers: {consumers: [join.table], partitions: 2}
      joined: {producers: [join.joined]}
    """
    path = write_app(tmp_path, blueprint)
    monkeypatch.syspath_prepend(str(tmp_path))
    verified = verify(path).unwrap()
    state_dir = tmp_path / "state"
    schema = verified.streamlets["join"].schema
    from streamlets.codecs import codec_for

    def messages(port: str, items: list[tuple[str, Any]]) -> list[Message]:
        codec = codec_for("avro", schema(port), schema(port))
        return [Message(codec.encode(v), k.encode(), (), "", -1, -1, 1) for k, v in items]

    first = LocalRunner(
        verified,
        inject={"customers": messages("table", [("c1", ALICE), ("c2", BOB)])},
        state_dir=state_dir,
    )
    assert asyncio.run(first.run()).error is None
    second = LocalRunner(
        verified,
        inject={"orders": messages("stream", [("c1", Order(order=1, amount=1.0))])},
        collect=["joined"],
        state_dir=state_dir,
    )
    result = asyncio.run(second.run())
    assert result.error is None
    joined = codec_for("avro", schema("joined"), schema("joined"))
    (row,) = [joined.decode(m.value) for m in result.collected["joined"] if m.value]
    assert row["table"] == {"name": "Alice", "city": "Oslo"}
    # The blueprint's joins_app is the copy next to it: compare the records' fields.
    kept = {k: v.model_dump() for k, v in result.state["join"]["table"].items()}
    assert kept == {b"c1": ALICE.model_dump(), b"c2": BOB.model_dump()}


# -- global tables ---------------------------------------------------------------------------

GLOBAL = """
name: global-shop
streamlets:
  join:
    class: streamlets.library:GlobalJoin
    config: {stream: "joins_app:Order", table: "joins_app:Customer"}
    replicas: 2
topics:
  orders: {consumers: [join.stream], partitions: 2}
  customers: {consumers: [join.table], partitions: 3, config: {cleanup.policy: compact}}
  joined: {producers: [join.joined]}
"""

#: Customers whose keys hash to both partitions of a 2-partition topic.
KEYS = [f"k{i}" for i in range(8)]


def test_a_global_table_with_two_replicas_gives_each_replica_every_key(tmp_path: Path) -> None:
    assert {partition_for(k.encode(), 2) for k in KEYS} == {0, 1}
    path = write_app(tmp_path, GLOBAL)
    customers = [Record(Customer(name=k, city="x"), key=k, timestamp=1_000) for k in KEYS] + [
        Record(None, key="k0", timestamp=1_500)
    ]
    orders = [
        Record(Order(order=i, amount=1.0), key=k, timestamp=2_000) for i, k in enumerate(KEYS)
    ]
    result = run_blueprint(
        path, inject={"customers": customers, "orders": orders}, collect=["joined"]
    )
    assert result.error is None and result.dead_letters == []
    # Inner join: every order of a known customer, whichever replica's partition it is on.
    joined = result.topics["joined"]
    assert sorted(row["key"] for row in joined) == KEYS[1:]
    assert all(row["table"]["name"] == row["key"] for row in joined)
    assert {partition_for(row["key"].encode(), 2) for row in joined} == {0, 1}
    # A global table is no state: nothing of it is partitioned among the replicas.
    assert result.state == {}


class GlobalLookup(Streamlet):
    """A global table looked up by a field, not the record key (no co-partitioning)."""

    orders = Inlet(Order)
    customers = Inlet(Customer, table="global")
    out = Outlet(Enriched)

    def process(self, order: Order) -> Enriched:
        key = f"k{order.order}"
        found = self.customers.get(key)
        return Enriched(order=order.order, customer=key, name=found.name if found else None)


def test_a_global_table_answers_lookups_of_any_key() -> None:
    assert GlobalLookup.replay_inlets == ("customers",)
    assert "customers" not in GlobalLookup.states()
    result = run_streamlet(
        GlobalLookup,
        {
            "customers": [Record(Customer(name="one", city="x"), key="k1", timestamp=1)],
            "orders": [Record(Order(order=i, amount=1.0), timestamp=2) for i in (1, 2)],
        },
    )
    assert [(e.customer, e.name) for e in result.outputs["out"]] == [("k1", "one"), ("k2", None)]


# -- co-partitioning -------------------------------------------------------------------------


def test_a_lookup_of_a_key_of_another_partition_says_how_to_fix_it(tmp_path: Path) -> None:
    app = """
    from pydantic import BaseModel
    from streamlets import Inlet, Outlet, Streamlet
    from joins_app import Customer, Order

    class ByField(Streamlet):
        orders = Inlet(Order)
        customers = Inlet(Customer, table=True)
        out = Outlet(Order)

        def process(self, order: Order) -> Order:
            self.customers.get(f"c{order.order}")
            return order
    """
    blueprint = """
    name: misuse
    streamlets:
      by-field: {class: byfield:ByField}
    topics:
      orders: {consumers: [by-field.orders], partitions: 3}
      customers: {consumers: [by-field.customers], partitions: 3}
      out: {producers: [by-field.out]}
    """
    path = write_app(tmp_path, blueprint)
    (tmp_path / "byfield.py").write_text(textwrap.dedent(app), encoding="utf-8")
    # Orders keyed "o<n>", looked up as "c<n>": some lookups hash to another partition.
    orders = [Record(Order(order=i, amount=1.0), key=f"o{i}") for i in range(12)]
    result = run_blueprint(path, inject={"orders": orders}, collect=["out"])
    assert result.error is None
    assert result.dead_letters, "some lookups are of keys in other partitions"
    for dead in result.dead_letters:
        assert dead.stage == "state"
        assert "kept in partition" in dead.error_message
        assert "table='global'" in dead.error_message
    assert len(result.topics["out"]) + len(result.dead_letters) == 12


# -- the order of table and stream records ---------------------------------------------------


def message(partition: int, timestamp: int, tag: str) -> Message:
    return Message(tag.encode(), None, (), "", partition, -1, timestamp)


def test_records_at_hand_are_handled_in_timestamp_order_tables_first() -> None:
    stream = [message(0, 5, "s1"), message(0, 3, "s2"), message(1, 1, "s3")]
    table = [message(0, 1, "t1"), message(0, 5, "t2")]
    runs = in_time_order({"stream": stream, "table": table}, {"table"})
    flat = [(inlet, m.value) for inlet, messages in runs for m in messages]
    # s3 and t1 (time 1): the table's first; s2 (time 3) waits for s1: a partition's order
    # is its own, whatever the timestamps; t2 (time 5) before s1 (time 5).
    assert flat == [
        ("table", b"t1"),
        ("stream", b"s3"),
        ("table", b"t2"),
        ("stream", b"s1"),
        ("stream", b"s2"),
    ]
    assert [inlet for inlet, _ in runs] == ["table", "stream", "table", "stream"]
    assert in_time_order({"stream": stream, "table": []}, {"table"}) == [("stream", stream)]


# -- a brute-force oracle --------------------------------------------------------------------

EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["customer", "tombstone", "order"]),
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 1),  # time step: 0 gives records of the same timestamp
    ),
    max_size=40,
)


def oracle(events: list[tuple[str, str, int, int]], how: str) -> list[tuple[str, int, Any]]:
    """The join computed directly: every record in timestamp order (a table's first at
    the same time), a dict for the table."""
    ordered = sorted(events, key=lambda e: (e[3], 0 if e[0] != "order" else 1))
    table: dict[str, dict[str, Any]] = {}
    out = []
    for kind, key, n, _ in ordered:
        if kind == "customer":
            table[key] = {"name": f"{key}{n}", "city": "x"}
        elif kind == "tombstone":
            table.pop(key, None)
        elif key in table or how == "left":
            out.append((key, n, table.get(key)))
    return out


@settings(max_examples=40, deadline=None)
@given(EVENTS, st.sampled_from(["inner", "left"]))
def test_the_join_matches_a_brute_force_computation(
    steps: list[tuple[str, str, int]], how: str
) -> None:
    events: list[tuple[str, str, int, int]] = []
    at = 1_000
    for n, (kind, key, step) in enumerate(steps):
        at += step
        events.append((kind, key, n, at))
    orders, customers = [], []
    for kind, key, n, when in events:
        if kind == "order":
            orders.append(Record(Order(order=n, amount=1.0), key=key, timestamp=when))
        elif kind == "customer":
            customers.append(Record(Customer(name=f"{key}{n}", city="x"), key=key, timestamp=when))
        else:
            customers.append(Record(None, key=key, timestamp=when))
    result = run_streamlet(
        Join,
        {"stream": orders, "table": customers},
        config={"stream": Order, "table": Customer, "how": how},
    )
    assert result.error is None and result.dead_letters == []
    got = [(row["key"], row["stream"]["order"], row["table"]) for row in result.outputs["joined"]]
    assert got == oracle(events, how)


def test_on_kafka_a_join_takes_the_range_assignor_and_a_global_join_need_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Range gives partition p of both topics to one replica, which holds p's table;
    cooperative-sticky promises no such thing (the test on the broker sees it happen)."""
    from runner.kafka import KafkaSettings
    from runner.kafka.process import StreamletProcess

    path = write_app(tmp_path, PIPELINE)
    monkeypatch.syspath_prepend(str(tmp_path))
    verified = verify(path).unwrap()
    settings = KafkaSettings.load(bootstrap="127.0.0.1:1")
    strategy = StreamletProcess(verified, "left", settings)._assignment_strategy()
    assert strategy == "range"
    assert StreamletProcess(verified, "left-file", settings)._assignment_strategy() == (
        "cooperative-sticky"
    )
    global_path = write_app(tmp_path / "global", GLOBAL)
    monkeypatch.syspath_prepend(str(tmp_path / "global"))
    lookup = StreamletProcess(verify(global_path).unwrap(), "join", settings)
    assert lookup._assignment_strategy() == "cooperative-sticky"  # one shared topic
