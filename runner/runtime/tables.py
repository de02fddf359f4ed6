"""Table inlets at run time (DESIGN §9): keeping each table up to date, looking keys up,
and the order in which a streamlet with tables sees its inlets' records.

A co-partitioned table (``Inlet(..., table=True)``) is a state of the inlet's name in the
instance's :class:`~runner.runtime.state.StateManager`: a table record is a ``set`` of its
key in its partition (a tombstone a ``delete``), so the table shares the stores, the
checkpoints, the changelog and the restore of every other state. A global table
(``table="global"``) is read in full by every replica (a replay inlet) and kept here, in
memory, with every key.

Order: a stream record sees the table as it is when the stream record is handled. Both
runners hand a streamlet with tables the records that are available of all its inlets in
timestamp order (:func:`in_time_order`; a table record before a stream record of the same
timestamp), as Kafka Streams does; a record that has not arrived yet is not waited for.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from blueprint import StreamletSpec, VerifiedBlueprint
from runner.runtime.messages import Message
from runner.runtime.partitioning import partition_for
from runner.runtime.state import StateManager
from streamlets.codecs.avro import AvroCodec
from streamlets.schema import Schema
from streamlets.state import RecordScope, State, StateError, current_scope
from streamlets.streamlet import Streamlet
from streamlets.tables import TableState

__all__ = [
    "GlobalTable",
    "PartitionedTable",
    "Table",
    "bind_tables",
    "in_time_order",
    "spec_states",
]


def spec_states(spec: StreamletSpec) -> dict[str, State[Any]]:
    """The states of ``spec``'s streamlet, its co-partitioned tables' with the schema of
    its config (a table inlet may take its schema from config, as the library Join's do)."""
    found: dict[str, State[Any]] = {}
    for name, state in spec.cls.states().items():
        found[name] = state.resolved(spec.schema(name)) if isinstance(state, TableState) else state
    return found


def _where(spec: StreamletSpec, inlet: str) -> str:
    return f"{spec.name}.{inlet}"


class PartitionedTable:
    """A co-partitioned table: the state ``inlet`` of ``manager``.

    ``partitions`` is the table topic's partition count when the blueprint gives one: a
    lookup of a key that hashes to another partition than the record being handled's
    cannot find it here, and says so instead of answering ``None``.
    """

    def __init__(self, where: str, inlet: str, manager: StateManager, partitions: int) -> None:
        self.where = where
        self.inlet = inlet
        self.manager = manager
        self.partitions = partitions
        self._var = current_scope()
        self._lookup = RecordScope(None, 0)  # reused: reads never interleave

    def put(self, key: bytes, partition: int, record: Any) -> None:
        """``record`` is now the value of ``key`` (a record of ``partition``)."""
        scope = RecordScope(key, partition if partition >= 0 else 0)
        self.manager.write(self.inlet, scope, record)
        self.manager.settle(scope, True)

    def delete(self, key: bytes, partition: int) -> None:
        """A tombstone: ``key`` has no value any more."""
        scope = RecordScope(key, partition if partition >= 0 else 0)
        self.manager.remove(self.inlet, scope)
        self.manager.settle(scope, True)

    def get(self, key: bytes) -> Any:
        """The value of ``key`` in the partition of the record being handled (in every
        partition this instance holds, outside a handler), or ``None``."""
        current = self._var.get()
        manager = self.manager
        if current is None or not current.keyed:
            return manager.find(self.inlet, key)
        partition = current.partition
        n = self.partitions
        if n > 1 and key != current.key and partition_for(key, n) != partition:
            raise StateError(
                f"table '{self.where}' is looked up by key {_show(key)}, which is kept in "
                f"partition {partition_for(key, n)} of the table, but this record comes from "
                f"partition {partition}; a co-partitioned table holds only the keys of the "
                "record's own partition: key the stream by what it looks up (Outlet(Schema, "
                "key='field') on its producer), or make the table global "
                "(Inlet(..., table='global'))"
            )
        scope = self._lookup
        scope.key = key
        scope.partition = partition
        found, value = manager.read(self.inlet, scope)
        return value if found else None


class GlobalTable:
    """A global table: every key, in memory, encoded with the inlet's schema (a lookup
    decodes a fresh value, so changing it in place changes nothing)."""

    def __init__(self, schema: Schema) -> None:
        self.codec = AvroCodec(schema)
        self.values: dict[bytes, bytes] = {}

    def put(self, key: bytes, partition: int, record: Any) -> None:
        """``record`` is now the value of ``key``."""
        self.values[key] = self.codec.encode(record)

    def delete(self, key: bytes, partition: int) -> None:
        """A tombstone: ``key`` has no value any more."""
        self.values.pop(key, None)

    def get(self, key: bytes) -> Any:
        """The value of ``key``, or ``None``."""
        raw = self.values.get(key)
        return None if raw is None else self.codec.decode(raw)


Table = PartitionedTable | GlobalTable


def bind_tables(
    spec: StreamletSpec,
    blueprint: VerifiedBlueprint,
    instance: Streamlet,
    state: StateManager | None,
) -> dict[str, Table]:
    """The tables of ``spec``'s streamlet by inlet, each bound to ``instance``'s inlet so
    that ``self.<inlet>.get(key)`` looks it up."""
    tables: dict[str, Table] = {}
    for name, inlet in spec.cls.tables().items():
        table: Table
        if inlet.table == "global":
            table = GlobalTable(spec.schema(name))
        else:
            assert state is not None  # a co-partitioned table is a state: there is a manager
            topic = blueprint.inlet_topic(spec.name, name)
            partitions = topic.partitions if topic is not None and topic.partitions else 0
            table = PartitionedTable(_where(spec, name), name, state, partitions)
        inlet.bind_table(instance, table.get)
        tables[name] = table
    return tables


def _show(key: bytes) -> str:
    try:
        return repr(key.decode("utf-8"))
    except UnicodeDecodeError:
        return repr(key)


def in_time_order(
    batches: Mapping[str, Sequence[Message]], tables: Collection[str]
) -> list[tuple[str, list[Message]]]:
    """The messages of ``batches`` (inlet -> messages) as runs of one inlet each, in the
    order a streamlet with tables handles them: by timestamp, a table's record first when a
    stream record has the same timestamp, each partition's records in their own order.

    This is Kafka Streams' choice among a task's partitions (the head record with the
    lowest timestamp goes next), over the records at hand.
    """
    present = [(inlet, list(messages)) for inlet, messages in batches.items() if messages]
    if len(present) <= 1:
        return present
    # One queue per (inlet, partition); the heap holds each queue's head.
    queues: list[tuple[str, list[Message]]] = []
    for inlet, messages in present:
        by_partition: dict[int, list[Message]] = {}
        for message in messages:
            by_partition.setdefault(message.partition, []).append(message)
        queues.extend((inlet, part) for part in by_partition.values())
    heap = [
        (messages[0].timestamp, 0 if inlet in tables else 1, index, 0)
        for index, (inlet, messages) in enumerate(queues)
    ]
    heapq.heapify(heap)
    runs: list[tuple[str, list[Message]]] = []
    while heap:
        _, rank, index, position = heap[0]
        inlet, messages = queues[index]
        message = messages[position]
        if runs and runs[-1][0] == inlet:
            runs[-1][1].append(message)
        else:
            runs.append((inlet, [message]))
        position += 1
        if position < len(messages):
            heapq.heapreplace(heap, (messages[position].timestamp, rank, index, position))
        else:
            heapq.heappop(heap)
    return runs
