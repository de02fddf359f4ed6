"""Stream-table joins from the blueprint alone (DESIGN §9): ``Join`` and ``GlobalJoin``.

::

    enrich:
      class: streamlets.library:Join
      config:
        stream: shop.records:Order          # the stream's records, module:Class (or Avro)
        table: shop.records:Customer        # the table's records
        how: left                           # inner (default): no match, no output

Each record of the ``stream`` inlet is looked up by its key in the ``table`` inlet (the
latest record of each key; a tombstone deletes one) and goes out on ``joined`` as a
``JoinResult``: ``key`` (the record key, text), ``stream`` (the stream record) and
``table`` (the table's record, or null). ``how: inner`` emits only stream records whose
key the table holds when they are handled; ``how: left`` emits every stream record, with
``table`` null when there is no match (yet). The output keeps the stream record's key and
timestamp. ``Join``'s table is co-partitioned with the stream (the same partition count,
records keyed alike: verify checks the counts); ``GlobalJoin``'s is read in full by every
replica, so the stream may be partitioned as it likes (for small reference tables).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ImportString

from streamlets.errors import SchemaError
from streamlets.meta import Meta
from streamlets.ports import FromConfig, Inlet, Outlet
from streamlets.schema import Schema
from streamlets.state import StateError
from streamlets.streamlet import Streamlet

__all__ = ["JOIN_RESULT", "GlobalJoin", "Join", "JoinConfig", "join_result_schema"]

#: The name of the output record (a reader's model of it is named so, or aliases it).
JOIN_RESULT = "JoinResult"


def join_result_schema(stream: Schema, table: Schema) -> dict[str, Any]:
    """The Avro schema of :class:`Join`'s output for these stream and table schemas:
    ``key`` (string), ``stream`` (the stream's record) and ``table`` (the table's record
    or null, default null)."""
    table_type: Any = table.avro
    if table.name == stream.name and table.avro != stream.avro:
        raise SchemaError(
            f"the stream and the table schemas are both named '{stream.name}' but differ; "
            "a join's output holds both, so give one of them another name"
        )
    if table.name == stream.name and isinstance(stream.avro, dict):
        table_type = stream.name  # the same named type: defined once, then referred to
    return {
        "type": "record",
        "name": JOIN_RESULT,
        "doc": "A stream record joined with the table's record of its key.",
        "fields": [
            {"name": "key", "type": "string", "doc": "the record key the two sides share"},
            {"name": "stream", "type": stream.avro, "doc": "the stream record"},
            {
                "name": "table",
                "type": ["null", table_type],
                "default": None,
                "doc": "the table's record of the key; null when it has none (a left join)",
            },
        ],
    }


#: A record type in config: a pydantic model ``module:Class`` or an Avro schema mapping.
_RecordType = ImportString[type[BaseModel]] | dict[str, Any]


class JoinConfig(BaseModel):
    """Config of :class:`Join` and :class:`GlobalJoin`."""

    model_config = ConfigDict(extra="forbid")

    stream: _RecordType = Field(
        description="the stream's record type: a pydantic model 'module:Class' or an Avro schema"
    )
    table: _RecordType = Field(
        description="the table's record type: a pydantic model 'module:Class' or an Avro schema"
    )
    how: Literal["inner", "left"] = Field(
        "inner",
        description="inner: a stream record without a match is dropped; left: it goes out "
        "with 'table' null",
    )

    @cached_property
    def joined(self) -> dict[str, Any]:
        """The Avro schema of the output (see :func:`join_result_schema`)."""
        return join_result_schema(Schema.of(self.stream), Schema.of(self.table))


class Join(Streamlet):
    """Joins each stream record with the table's latest record of its key.

    Config: ``stream`` and ``table`` (record types, ``module:Class`` or Avro schemas) and
    ``how`` (``inner`` or ``left``). The table is co-partitioned with the stream: both
    topics need the same partition count, and the stream keyed by the table's key.
    """

    stream = Inlet(FromConfig("stream"), description="the records to join, by their key")
    table = Inlet(
        FromConfig("table"), table=True, description="the table: the latest record per key"
    )
    joined = Outlet(FromConfig("joined"), description="JoinResult: key, stream and table")
    Config = JoinConfig
    config: JoinConfig

    def setup(self) -> None:
        """Take the config's choices once."""
        self._inner = self.config.how == "inner"
        self._stream_datum = self.port_schema("stream").to_datum
        self._table_datum = self.port_schema("table").to_datum

    def process(self, record: Any, meta: Meta) -> dict[str, Any] | None:
        """The join of one stream record (``None`` for an inner join without a match)."""
        key = meta.raw_key
        if key is None:
            raise StateError(
                f"streamlet '{self.name}' joins records by key, and this stream record has "
                "none; key the stream's records (Outlet(Schema, key='field') on the producer)"
            )
        found = self.table.get(key)
        if found is None and self._inner:
            return None
        return {
            "key": meta.key,
            "stream": self._stream_datum(record),
            "table": None if found is None else self._table_datum(found),
        }


class GlobalJoin(Join):
    """:class:`Join` with a global table: every replica reads all of the table's topic from
    its beginning and holds every key, so the stream needs no co-partitioning (the table
    should be small: it is kept in memory, whole, by each replica)."""

    table = Inlet(
        FromConfig("table"), table="global", description="the table: every replica holds all of it"
    )
