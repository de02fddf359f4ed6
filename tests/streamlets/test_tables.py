"""Declaring tables (DESIGN §9): Inlet(..., table=...), the state a co-partitioned table
becomes, global tables as replay inlets, what a table inlet may not have, tombstones."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from streamlets import Inlet, Outlet, State, StateError, Streamlet, StreamletDefinitionError
from streamlets.library import GlobalJoin, Join
from streamlets.ports import TOMBSTONE
from streamlets.tables import TableState


class Order(BaseModel):
    id: int


class Customer(BaseModel):
    name: str


class Enrich(Streamlet):
    orders = Inlet(Order)
    customers = Inlet(Customer, table=True)
    out = Outlet(Order)
    seen = State(int, default=0)

    def process(self, order: Order) -> Order:
        return order


def test_a_co_partitioned_table_is_a_state_of_the_inlets_name() -> None:
    assert Enrich.customers.table is True and Enrich.orders.table is False
    assert list(Enrich.tables()) == ["customers"]
    assert list(Enrich.states()) == ["seen", "customers"]
    table = Enrich.states()["customers"]
    assert isinstance(table, TableState) and table.owner is Enrich
    assert table.schema is Enrich.customers.schema
    assert table.definition_problem() is None
    assert Enrich.replay_inlets == ()
    assert Enrich.definition_problems() == []  # process() handles the one stream inlet


def test_a_global_table_is_a_replay_inlet_and_no_state() -> None:
    class Lookup(Enrich):
        customers = Inlet(Customer, table="global")

    assert Lookup.replay_inlets == ("customers",)
    assert list(Lookup.states()) == ["seen"]

    class BackToCoPartitioned(Lookup):
        customers = Inlet(Customer, table=True)

    assert BackToCoPartitioned.replay_inlets == ()
    assert "customers" in BackToCoPartitioned.states()
    assert GlobalJoin.replay_inlets == ("table",) and "table" not in GlobalJoin.states()
    assert Join.replay_inlets == () and "table" in Join.states()


def test_declared_replay_inlets_stay_next_to_global_tables() -> None:
    class Controlled(Streamlet):
        control = Inlet(Order)
        records = Inlet(Order)
        customers = Inlet(Customer, table="global")
        replay_inlets = ("control",)

        def process(self, record: Any) -> None:
            return None

    assert Controlled.replay_inlets == ("control", "customers")


@pytest.mark.parametrize("value", ["yes", 1, None, "Global"])
def test_table_takes_true_false_or_global(value: Any) -> None:
    with pytest.raises(StreamletDefinitionError, match="'global'"):
        Inlet(Customer, table=value)


def test_a_table_inlet_takes_no_handler() -> None:
    class Handled(Streamlet):
        orders = Inlet(Order)
        customers = Inlet(Customer, table=True)

        @orders.handler
        def on_order(self, order: Order) -> None:
            return None

        @customers.handler
        def on_customer(self, customer: Customer) -> None:
            return None

    (problem,) = Handled.definition_problems()
    assert "'customers' is a table" in problem and "self.customers.get(key)" in problem


def test_lookups_outside_a_runner_and_on_a_stream_inlet_say_what_to_do() -> None:
    instance = Enrich()
    with pytest.raises(StateError, match="outside a runner"):
        instance.customers.get("c1")
    with pytest.raises(StreamletDefinitionError, match="not a table"):
        instance.orders.get("c1")


def test_a_tombstone_needs_a_key() -> None:
    routed = Enrich.out.tombstone("c1")
    assert routed.record is TOMBSTONE and routed.key == "c1" and routed.outlet is Enrich.out
    with pytest.raises(StreamletDefinitionError, match="needs the key"):
        Enrich.out.tombstone(None)  # type: ignore[arg-type]
