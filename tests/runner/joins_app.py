"""Streamlets and records for the join tests (tests/runner/test_joins.py and
tests/integration/test_kafka_joins.py; copied next to a test's blueprint).

``SCRIPT`` is a shop's day in timestamp order: orders keyed by customer, customer records
(a table) with a late arrival, a tombstone and an update. ``expected_join`` is what a
stream-table join of it gives, worked out by hand from the rules (a stream record sees the
table as of its own timestamp; a table record of the same timestamp counts).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from streamlets import Inlet, Meta, Outlet, Routed, Streamlet


class Order(BaseModel):
    order: int
    amount: float


class Customer(BaseModel):
    name: str
    city: str


class Enriched(BaseModel):
    """A reader's model of the library Join's output."""

    __avro_aliases__: ClassVar[tuple[str, ...]] = ("JoinResult",)

    key: str
    stream: Order
    table: Customer | None = None


ALICE = Customer(name="Alice", city="Oslo")
BOB = Customer(name="Bob", city="Lyon")
BOB_MOVED = Customer(name="Bob", city="Paris")

#: (kind, key, record, timestamp ms): kind "order", "customer" or "tombstone".
SCRIPT: list[tuple[str, str, Any, int]] = [
    ("order", "alice", Order(order=1, amount=10.0), 1_000),  # before its customer arrives
    ("customer", "alice", ALICE, 2_000),
    ("customer", "bob", BOB, 2_000),
    ("order", "alice", Order(order=2, amount=20.0), 3_000),
    ("order", "bob", Order(order=3, amount=30.0), 3_000),
    ("tombstone", "alice", None, 4_000),
    ("order", "alice", Order(order=4, amount=40.0), 5_000),  # Alice was deleted
    ("customer", "bob", BOB_MOVED, 6_000),
    ("order", "bob", Order(order=5, amount=50.0), 6_000),  # same time: sees the update
    ("order", "carol", Order(order=6, amount=60.0), 7_000),  # a customer never known
]

#: order number -> the customer a join gives it (None: no match when it was handled).
MATCHES: dict[int, Customer | None] = {1: None, 2: ALICE, 3: BOB, 4: None, 5: BOB_MOVED, 6: None}


def expected_join(how: str) -> list[tuple[str, int, Customer | None]]:
    """(key, order, customer) of each output of a join of ``SCRIPT``, in order."""
    found = []
    for kind, key, record, _ in SCRIPT:
        if kind != "order":
            continue
        match = MATCHES[record.order]
        if match is None and how == "inner":
            continue
        found.append((key, record.order, match))
    return found


class ShopEvents(Streamlet):
    """Emits ``SCRIPT``: orders and customers keyed by customer, tombstones for deletes."""

    orders = Outlet(Order)
    customers = Outlet(Customer)

    def generate(self) -> Iterator[Routed[Any]]:
        for kind, key, record, at in SCRIPT:
            if kind == "order":
                yield self.orders.emit(record, key=key, timestamp=at)
            elif kind == "customer":
                yield self.customers.emit(record, key=key, timestamp=at)
            else:
                yield self.customers.tombstone(key, timestamp=at)


class JoinedFile(Streamlet):
    """Appends each joined record, with its key and timestamp, to a JSON-lines file."""

    joined = Inlet(Enriched)

    class Config(BaseModel):
        path: Path

    def process(self, record: Enriched, meta: Meta) -> None:
        row = {"meta_key": meta.key, "at": meta.timestamp_ms, **record.model_dump()}
        with self.config.path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(row) + "\n")


def read_joined(path: Path) -> list[tuple[str, int, Customer | None]]:
    """(key, order, customer) of each row a JoinedFile wrote."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [
        (
            row["key"],
            row["stream"]["order"],
            None if row["table"] is None else Customer(**row["table"]),
        )
        for row in rows
    ]


class Forget(Streamlet):
    """Deletes the key of each request from the customers table: a tombstone per request."""

    requests = Inlet(Customer)
    customers = Outlet(Customer)

    def process(self, request: Customer, meta: Meta) -> Routed[Customer]:
        return self.customers.tombstone(str(meta.key))
