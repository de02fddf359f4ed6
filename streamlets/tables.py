"""Table inlets (DESIGN §9): the state that keeps a co-partitioned table.

``Inlet(Customer, table=True)`` declares a table; the streamlet class then also has a
:class:`TableState` under the inlet's name in :meth:`Streamlet.states`, so the runners keep
the table like any other state: per input partition, in the same stores, changelog-backed
and restored with the rest on Kafka, seeded and read back by the testkit
(``state={"customers": {...}}``, ``result.state["customers"]``). Its values are the
table's records, in the inlet's schema. A global table (``table="global"``) is no state:
every replica reads its whole topic from the beginning instead (it is one of the
streamlet's ``replay_inlets``).
"""

from __future__ import annotations

import copy
from typing import Any

from streamlets.errors import SchemaError
from streamlets.ports import FromConfig, Inlet
from streamlets.schema import Schema
from streamlets.state import State, StateBackend

__all__ = ["TableState"]


class TableState(State[Any]):
    """The latest record per key of the table inlet ``inlet``, kept as a state of its name.

    Only the runner writes it (from the inlet's records); handlers read it through the
    inlet (``self.customers.get(key)``), so binding it to an instance leaves the instance
    as it is.
    """

    def __init__(self, inlet: Inlet[Any], owner: type) -> None:
        source: Any = inlet.source
        super().__init__(source, description=f"the table of inlet '{inlet.name}'")
        self.inlet = inlet
        self.name = inlet.name
        self.owner = owner

    @property
    def schema(self) -> Schema:
        """The table's records' schema: the inlet's (see :meth:`resolved` for one that
        comes from config)."""
        if self._schema is None:
            if isinstance(self.source, FromConfig):
                raise SchemaError(
                    f"the table of inlet '{self.name}' takes its schema from config field "
                    f"'{self.source.field}'; use resolved(schema)"
                )
            self._schema = self.inlet.schema
        return self._schema

    def resolved(self, schema: Schema) -> TableState:
        """This table's state with ``schema``, the inlet's schema for a streamlet's config."""
        found = copy.copy(self)
        found.source = schema.model if schema.model is not None else schema.avro
        found._schema = schema
        return found

    def definition_problem(self) -> str | None:
        """``None``: the inlet's schema is checked as a port's (and a table has no default)."""
        return None

    def bind(self, instance: object, backend: StateBackend) -> State[Any]:
        """Nothing to bind: the runner binds the inlet (:meth:`Inlet.bind_table`)."""
        return self
