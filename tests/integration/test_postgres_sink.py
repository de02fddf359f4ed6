"""PostgresSink against a real PostgreSQL server (Debian's packages, see postgres_server.py):
types and tables, upserts, constraint violations, a SIGKILL of the sink process on Kafka,
and the database going away for 20 s."""

from __future__ import annotations

import itertools
import signal
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any
from uuid import UUID

import psycopg
import pytest
from pydantic import BaseModel, Field

from runner.testkit import run_streamlet
from streamlets import Inlet
from streamlets.codecs import codec_for
from streamlets.library import PostgresSink
from streamlets.schema import Schema
from tests.integration.conftest import Item, KafkaApp, KafkaTools, stop
from tests.integration.postgres_server import PostgresServer, PostgresUnavailable

_tables = itertools.count()
ITEM_CODEC = codec_for("avro", Schema.of(Item), Schema.of(Item))

#: A sink that takes a while per batch, so that it can be stopped in the middle of a stream.
PGAPP = """
import asyncio

from streamlets import Inlet
from streamlets.library import PostgresSink
from streamlets.library.postgres import PostgresSinkConfig

from ktapp import Item


class SlowPostgres(PostgresSink):
    records = Inlet(Item)

    class Config(PostgresSinkConfig):
        delay: float = 0.0

    async def write_batch(self, records):
        await asyncio.sleep(self.config.delay)
        await super().write_batch(records)
"""


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for this module's tests (each uses its own tables)."""
    try:
        server = PostgresServer()
        server.start()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.close()


def _table() -> str:
    return f"t{next(_tables)}_{int(time.time() * 1000) % 100000}"


def _query(server: PostgresServer, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(server.dsn()) as connection:
        cursor = connection.execute(sql)  # type: ignore[call-overload]
        return cursor.fetchall() if cursor.description else []


class Colour(Enum):
    RED = "RED"
    GREEN = "GREEN"


class Point(BaseModel):
    x: float
    y: float


class Everything(BaseModel):
    id: int
    name: str
    score: float
    ok: bool
    at: datetime
    day: date
    colour: Colour
    ref: UUID
    price: Annotated[Decimal, Field(max_digits=8, decimal_places=2)]
    blob: bytes
    note: str | None = None
    tags: list[str] = []
    where: Point | None = None


class Everything2Sink(PostgresSink):
    records = Inlet(Everything)


def test_creates_the_table_from_the_schema_and_inserts_every_record(
    postgres: PostgresServer,
) -> None:
    table = _table()
    at = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    records = [
        Everything(
            id=i,
            name=f"n{i}",
            score=i / 2,
            ok=i % 2 == 0,
            at=at,
            day=date(2024, 1, 1 + i),
            colour=Colour.GREEN if i else Colour.RED,
            ref=UUID(int=i),
            price=Decimal("12.34"),
            blob=b"\x00\x01",
            note=None if i else "first",
            tags=["a", "b"][:i],
            where=Point(x=1.5, y=-2) if i == 2 else None,
        )
        for i in range(3)
    ]
    result = run_streamlet(
        Everything2Sink,
        {"records": records},
        config={"dsn": postgres.dsn(), "table": f"public.{table}", "create_table": True},
    )
    assert result.error is None and not result.dead_letters
    columns = dict(
        _query(
            postgres,
            "SELECT column_name, data_type || ':' || is_nullable FROM "
            f"information_schema.columns WHERE table_name = '{table}'",
        )
    )
    assert columns == {
        "id": "bigint:NO",
        "name": "text:NO",
        "score": "double precision:NO",
        "ok": "boolean:NO",
        "at": "timestamp with time zone:NO",
        "day": "date:NO",
        "colour": "text:NO",
        "ref": "uuid:NO",
        "price": "numeric:NO",
        "blob": "bytea:NO",
        "note": "text:YES",
        "tags": "jsonb:NO",
        "where": "jsonb:YES",
    }
    rows = _query(
        postgres, f'SELECT id, name, at, day, colour, ref, price, note, tags, "where" FROM {table}'
    )
    assert sorted(rows)[0] == (
        0, "n0", at, date(2024, 1, 1), "RED", UUID(int=0), Decimal("12.34"), "first", [], None
    )  # fmt: skip
    assert sorted(rows)[2][8:] == (["a", "b"], {"x": 1.5, "y": -2.0})


class ItemSink(PostgresSink):
    records = Inlet(Item)


def test_upsert_keeps_one_row_per_key_the_latest(postgres: PostgresServer) -> None:
    table = _table()
    config = {
        "dsn": postgres.dsn(),
        "table": table,
        "mode": "upsert",
        "key": "id",
        "create_table": True,
        "batch_size": 7,
    }
    first = [Item(id=i % 10, payload=f"v{i}") for i in range(30)]
    assert not run_streamlet(ItemSink, {"records": first}, config=config).dead_letters
    again = [Item(id=i, payload="again") for i in range(5)]  # a replay after a restart
    assert not run_streamlet(ItemSink, {"records": again}, config=config).dead_letters
    rows = dict(_query(postgres, f"SELECT id, payload FROM {table}"))
    assert rows == {i: "again" if i < 5 else f"v{20 + i}" for i in range(10)}


def test_a_constraint_violation_dead_letters_only_the_bad_record(
    postgres: PostgresServer,
) -> None:
    table = _table()
    _query(
        postgres,
        f"CREATE TABLE {table} (id bigint PRIMARY KEY, payload text CHECK (payload <> 'bad'))",
    )
    records = [Item(id=i, payload="bad" if i == 13 else "ok") for i in range(40)]
    result = run_streamlet(
        ItemSink, {"records": records}, config={"dsn": postgres.dsn(), "table": table}
    )
    (dead,) = result.dead_letters
    assert dead.error_class == "CheckViolation" and dead.stage == "process"
    assert "violates check constraint" in dead.error_message
    assert ITEM_CODEC.decode(dead.original.value) == Item(id=13, payload="bad")
    ids = [row[0] for row in _query(postgres, f"SELECT id FROM {table} ORDER BY id")]
    assert ids == [i for i in range(40) if i != 13]


def test_a_bad_config_is_refused_with_the_reason() -> None:
    with pytest.raises(Exception, match="mode: upsert needs key"):
        ItemSink({"dsn": "postgresql://x", "table": "t", "mode": "upsert"})
    with pytest.raises(Exception, match="is not a table name"):
        ItemSink({"dsn": "postgresql://x", "table": "drop table; --"})
    sink = ItemSink({"dsn": "postgresql://x", "table": "t", "mode": "upsert", "key": "nope"})
    with pytest.raises(Exception, match="key names 'nope', which is no field"):
        sink.setup()


# -- on Kafka --------------------------------------------------------------------------------


def _sink_app(
    kafka_app: Callable[..., KafkaApp], postgres: PostgresServer, table: str, **config: Any
) -> KafkaApp:
    settings = {"dsn": postgres.dsn(), "table": table, "create_table": True, **config}
    app = kafka_app(
        f"""
        streamlets:
          store: {{class: pgapp:SlowPostgres, config: {settings!r}}}
        topics:
          items: {{name: "{{app}}-items", consumers: [store.records], partitions: 3}}
        """.replace("'", '"')
    )
    (app.directory / "pgapp.py").write_text(textwrap.dedent(PGAPP), encoding="utf-8")
    return app


def _wait_for_topic(kafka: KafkaTools, topic: str) -> None:
    deadline = time.monotonic() + 60
    while kafka.partitions(topic) < 3:
        assert time.monotonic() < deadline, f"{topic} was not created"
        time.sleep(0.2)


def _count(postgres: PostgresServer, table: str) -> int:
    try:
        return int(_query(postgres, f"SELECT count(*) FROM {table}")[0][0])
    except psycopg.errors.UndefinedTable:
        return 0


def _wait_rows(postgres: PostgresServer, table: str, count: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    found = _count(postgres, table)
    while found < count and time.monotonic() < deadline:
        time.sleep(0.2)
        found = _count(postgres, table)
    return found


def _items(start: int, stop: int) -> list[bytes]:
    return [ITEM_CODEC.encode(Item(id=i, payload=f"p{i}")) for i in range(start, stop)]


def test_every_record_lands_once_with_upserts_across_a_sigkill(
    kafka: KafkaTools, kafka_app: Callable[..., KafkaApp], postgres: PostgresServer
) -> None:
    count, table = 1500, _table()
    app = _sink_app(kafka_app, postgres, table, mode="upsert", key="id", batch_size=25, delay=0.05)
    first = app.streamlet("store", "--commit-interval", "0.2")
    try:
        _wait_for_topic(kafka, f"{app.name}-items")
        kafka.produce(f"{app.name}-items", _items(0, count))
        assert _wait_rows(postgres, table, 300, timeout=60) >= 300, app.log("store")
    finally:
        stop(first, signal.SIGKILL)
    written = _count(postgres, table)
    committed = kafka.committed(f"{app.name}.store", f"{app.name}-items")
    assert written < count, "the sink finished before it could be killed"
    assert sum(max(o, 0) for o in committed.values()) < count
    second = app.streamlet("store")
    try:
        _wait_rows(postgres, table, count, timeout=90)
        time.sleep(1.0)  # what a second delivery would add, it has had time to add
    finally:
        assert stop(second) == 0, app.log("store")
    rows = _query(postgres, f"SELECT id, payload FROM {table}")
    assert sorted(rows) == [(i, f"p{i}") for i in range(count)]


@pytest.mark.slow
def test_the_database_going_away_for_20_s_loses_nothing(
    kafka: KafkaTools, kafka_app: Callable[..., KafkaApp], postgres: PostgresServer
) -> None:
    table = _table()
    app = _sink_app(kafka_app, postgres, table, batch_size=50, backoff_max_s=1.0)
    topic = f"{app.name}-items"
    sink = app.streamlet("store", "--commit-interval", "0.2")
    try:
        _wait_for_topic(kafka, topic)
        kafka.produce(topic, _items(0, 500))
        assert _wait_rows(postgres, table, 500, timeout=60) == 500, app.log("store")
        postgres.stop()
        down_since = time.monotonic()
        # Records keep coming while the database is away.
        producer = threading.Thread(target=kafka.produce, args=(topic, _items(500, 1500)))
        producer.start()
        producer.join(60)
        time.sleep(max(0.0, 20 - (time.monotonic() - down_since)))
        assert sink.poll() is None, app.log("store")  # it waits; it does not crash
        postgres.start()
        found = _wait_rows(postgres, table, 1500, timeout=60)
    finally:
        if postgres.process is None:
            postgres.start()
        code = stop(sink)
    log = app.log("store")
    assert found >= 1500 and code == 0, log
    assert "cannot be reached" in log and "records wait until it can" in log, log
    assert "reachable again after" in log
    ids = [row[0] for row in _query(postgres, f"SELECT DISTINCT id FROM {table} ORDER BY id")]
    assert ids == list(range(1500))
