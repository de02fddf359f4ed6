"""Keyed state: ``State(schema, default=...)``, one value per record key (DESIGN §8).

A streamlet declares its states as class attributes, like its ports::

    class RunningTotal(Streamlet):
        payments = Inlet(Payment)
        totals = Outlet(Total)
        spent = State(float, default=0.0)

        def process(self, payment: Payment, meta: Meta) -> Total:
            total = self.spent.get() + payment.amount   # the value of this record's key
            self.spent.set(total)
            return Total(customer=meta.key, total=total)

In a handler, :meth:`State.get`, :meth:`State.set` and :meth:`State.delete` act on the key
of the record being handled (Kafka Streams' and Quix Streams' model: state is partitioned
like the input, so each replica holds the keys of its partitions). A source has no records
to key by: there, a state has one value, the source's own (a file offset, a cursor). The
runner keeps the values durable; this module only declares them and routes each call to
the runner's backend for the current record.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, Self, TypeVar, overload

from pydantic import BaseModel, create_model

from streamlets.errors import SchemaError, StreamletDefinitionError, StreamletsError
from streamlets.schema import Schema

__all__ = [
    "RecordScope",
    "State",
    "StateBackend",
    "StateError",
    "current_scope",
]

T = TypeVar("T")
M = TypeVar("M")

#: Values whose default needs no copy: nothing can change them in place.
_IMMUTABLE = (int, float, str, bytes, bool, type(None), tuple, frozenset)


class StateError(StreamletsError):
    """State was used where it cannot be: a keyless record, or outside a runner.

    A record whose handler raises it follows the streamlet's error policy with stage
    ``state``.
    """


class StateBackend(Protocol):
    """Where the runner keeps state values: the runtime implements it (one per instance)."""

    #: The scope of a source's own values (used where no record is being handled), or
    #: ``None`` for a streamlet whose states are keyed by its records.
    own: RecordScope | None

    def read(self, state: str, scope: RecordScope) -> tuple[bool, Any]:
        """``(True, value)`` for the scope's key, or ``(False, None)`` when it has none."""
        ...

    def write(self, state: str, scope: RecordScope, value: Any) -> None:
        """Set the value of the scope's key."""
        ...

    def remove(self, state: str, scope: RecordScope) -> None:
        """Delete the value of the scope's key."""
        ...


@dataclass(slots=True)
class RecordScope:
    """The record a handler is running for: its key and partition, and the state changes
    it made so far (applied when the handler succeeds, dropped when it fails)."""

    key: bytes | None
    partition: int
    #: (state, key) -> value, or DELETED: this record's changes, not yet applied.
    changes: dict[tuple[str, bytes], Any] = field(default_factory=dict)
    #: Whether a key is required (a record's handler) or the scope is a source's own.
    keyed: bool = True


_scope: ContextVar[RecordScope | None] = ContextVar("streamlets_record_scope", default=None)


def current_scope() -> ContextVar[RecordScope | None]:
    """The context variable the runner sets to the record being handled."""
    return _scope


class State(Generic[T]):
    """A value per record key, kept by the runner across records, restarts and rebalances.

    ``schema`` is anything a port takes (a pydantic model, ``int``/``float``/``str``/
    ``bool``/``bytes``, an Avro schema dict): values are stored in its Avro form.
    ``default`` is what :meth:`get` returns for a key without a value (a copy of it, when it
    is mutable); without one, :meth:`get` returns ``None``.

    Changes are kept only through :meth:`set` and :meth:`delete`: a value changed in place
    after :meth:`get` must be :meth:`set` again. A handler that raises leaves the state as
    it was before the record.
    """

    @overload
    def __init__(self: State[M | None], schema: type[M], *, description: str = "") -> None: ...
    @overload
    def __init__(self: State[M], schema: type[M], *, default: M, description: str = "") -> None: ...
    @overload
    def __init__(
        self: State[Any],
        schema: Mapping[str, Any] | str | list[Any],
        *,
        default: Any = None,
        description: str = "",
    ) -> None: ...
    def __init__(self, schema: Any, *, default: Any = None, description: str = "") -> None:
        self.source = schema
        self.default = default
        self.description = description
        self.name = ""
        self.owner: type | None = None
        self._schema: Schema | None = None
        self._wrapper: type[BaseModel] | None = None
        self._backend: StateBackend | None = None
        self._copy_default: Callable[[Any], Any] | None = (
            None if isinstance(default, _IMMUTABLE) else copy.deepcopy
        )

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.owner = owner

    def __get__(self, instance: object | None, owner: type) -> Self:
        if instance is None:
            return self
        bound = instance.__dict__.get(self.name)
        return bound if isinstance(bound, State) else self  # type: ignore[return-value]

    # -- declaration ---------------------------------------------------------------------

    @property
    def schema(self) -> Schema:
        """The values' :class:`~streamlets.schema.Schema` (raises ``SchemaError`` when the
        schema has no Avro form)."""
        if self._schema is None:
            source = self.source
            if _needs_wrapper(source):
                # A type that is not a record (list[float], datetime): stored as the one
                # field of a record, the way a port would carry it.
                self._wrapper = create_model(
                    f"State_{self.owner.__name__ if self.owner else 'x'}_{self.name or 'x'}",
                    value=(source, ...),
                )
                source = self._wrapper
            self._schema = Schema.of(_schema_source(source))
        return self._schema

    def to_stored(self, value: Any) -> Any:
        """``value`` as a record of :attr:`schema` (the runner encodes that)."""
        wrapper = self._wrapper
        return value if wrapper is None else wrapper(value=value)

    def from_stored(self, record: Any) -> Any:
        """A decoded record of :attr:`schema` as the state's value."""
        return record if self._wrapper is None else record.value

    def definition_problem(self) -> str | None:
        """Why this state cannot be kept (no Avro form, a default that does not fit), or
        ``None``."""
        try:
            schema = self.schema
        except (SchemaError, StreamletDefinitionError) as exc:
            return f"its schema has no Avro form: {exc}"
        if self.default is None:
            return None
        try:
            schema.validate(self.to_stored(self.default))
        except Exception as exc:  # a pydantic or Avro validation error: reported, not raised
            return f"its default {self.default!r} does not fit its schema: {exc}"
        return None

    def bind(self, instance: object, backend: StateBackend) -> State[T]:
        """A copy of this state for ``instance`` that keeps its values in ``backend`` (the
        runner calls this before ``setup()``)."""
        bound = copy.copy(self)
        bound._backend = backend
        instance.__dict__[self.name] = bound
        return bound

    # -- use -----------------------------------------------------------------------------

    def _scope(self) -> tuple[StateBackend, RecordScope]:
        backend = self._backend
        if backend is None:
            raise StateError(
                f"state '{self._where()}' is used outside a runner; run the streamlet with "
                "runner.testkit.run_streamlet(..., state={...}) to test it"
            )
        scope = _scope.get() or backend.own
        if scope is None:
            raise StateError(
                f"state '{self._where()}' is used outside a record handler (in setup(), "
                "teardown() or a timer there is no record whose key it would be)"
            )
        if scope.key is None and scope.keyed:
            raise StateError(
                f"state '{self._where()}' needs the record's key, and this record has none; "
                "key the records of the input topic (Outlet(Schema, key='field') on the "
                "producer, or emit(record, key=...))"
            )
        return backend, scope

    def get(self) -> T:
        """The value of the current record's key, or the default when it has none."""
        backend, scope = self._scope()
        found, value = backend.read(self.name, scope)
        if found:
            return value  # type: ignore[no-any-return]
        default = self.default
        copier = self._copy_default
        return default if copier is None else copier(default)  # type: ignore[no-any-return]

    def set(self, value: T) -> None:
        """Set the value of the current record's key."""
        backend, scope = self._scope()
        backend.write(self.name, scope, value)

    def delete(self) -> None:
        """Delete the value of the current record's key (:meth:`get` then gives the
        default)."""
        backend, scope = self._scope()
        backend.remove(self.name, scope)

    def _where(self) -> str:
        owner = self.owner.__name__ if self.owner else "?"
        return f"{owner}.{self.name or '?'}"

    def __repr__(self) -> str:
        return f"<State {self._where()}>"


#: Python types a state may name directly, with their Avro type.
_PRIMITIVES: dict[type, str] = {
    bool: "boolean",
    int: "long",
    float: "double",
    str: "string",
    bytes: "bytes",
}


def _needs_wrapper(source: Any) -> bool:
    """Whether ``source`` is a Python type that is neither a model nor an Avro primitive."""
    if isinstance(source, Mapping | str | list):
        return False  # an Avro schema
    if isinstance(source, type):
        return not issubclass(source, BaseModel) and source not in _PRIMITIVES
    return True  # list[float], int | None, ...


def _schema_source(source: Any) -> Any:
    """What :meth:`Schema.of` takes for a state's ``schema``: ``float`` is ``"double"``."""
    if isinstance(source, type) and not issubclass(source, BaseModel):
        avro = _PRIMITIVES.get(source)
        if avro is None:
            raise SchemaError(
                f"a state of {source.__name__} cannot be stored; use a pydantic model, one "
                f"of {', '.join(t.__name__ for t in _PRIMITIVES)}, or an Avro schema"
            )
        return avro
    return source
