"""Inlets and outlets: the typed ports a streamlet declares as class attributes."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, ClassVar, Generic, Literal, Self, TypeAlias, TypeVar, cast, overload

from pydantic import BaseModel

from streamlets.errors import (
    CodecError,
    EncodeError,
    RecordValidationError,
    SchemaError,
    StreamletDefinitionError,
)
from streamlets.schema import Schema
from streamlets.state import StateError

__all__ = [
    "KEEP",
    "TOMBSTONE",
    "FromConfig",
    "Inlet",
    "KeyFunction",
    "Outlet",
    "Port",
    "Routed",
    "TableKind",
]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
H = TypeVar("H", bound=Callable[..., Any])

#: A function that gives a record's key: ``Outlet(Order, key=lambda o: o.customer)``.
#: A ``str`` is encoded as UTF-8, ``bytes`` are the key as they are, ``None`` means no key.
KeyFunction: TypeAlias = Callable[[T], "str | bytes | None"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_MS = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class FromConfig:
    """A port schema taken from a config parameter, for reusable (library) streamlets.

    ``Outlet(FromConfig("model"))`` uses the value of the streamlet's config field ``model``:
    a pydantic model class (declare the field as ``pydantic.ImportString[type[BaseModel]]``
    so a blueprint can say ``model: my.module:Reading``) or an Avro schema dict.
    """

    field: str


SchemaSource = type[BaseModel] | Mapping[str, Any] | str | list[Any] | FromConfig


class _Keep:
    """The default of :meth:`Outlet.emit`'s metadata: keep what the record would get."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "KEEP"


#: "Keep the key (or timestamp) the record would get anyway" (the default of ``emit``).
KEEP = _Keep()


class _Tombstone:
    """The record of :meth:`Outlet.tombstone`: no value, only a key (a delete)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "TOMBSTONE"


#: The record of a tombstone (a record with a null value): what ``outlet.tombstone(key)``
#: routes. A table inlet deletes the key when one arrives.
TOMBSTONE: Any = _Tombstone()

#: What ``Inlet(..., table=...)`` takes: ``False`` (a stream), ``True`` (a table
#: co-partitioned with the other inlets) or ``"global"`` (every replica holds all of it).
TableKind: TypeAlias = bool | Literal["global"]


class Port(Generic[T]):
    """A named, typed end of a topic connection; subclassed by :class:`Inlet` and :class:`Outlet`.

    The port's name is the attribute name it is assigned to in the streamlet class body.
    Its schema is a pydantic model class (records are model instances) or an Avro schema
    (records are plain dicts).
    """

    direction: str = "port"
    #: The error a value that cannot be a key or timestamp raises: the codec error of the
    #: stage the port's records are in (encode for an outlet, validate for an inlet).
    _metadata_error: ClassVar[type[CodecError]] = CodecError

    def __init__(self, schema: Any, *, description: str = "", timestamp: str | None = None) -> None:
        self.source: SchemaSource = schema
        self.description = description
        self.name: str = ""
        self.owner: type | None = None
        self._schema: Schema | None = None
        self._timestamp = _field_name(timestamp, "timestamp", type(self).__name__)
        self._read_timestamp: Callable[[Any], int | None] | None = (
            None if self._timestamp is None else self._timestamp_reader(self._timestamp)
        )

    @property
    def timestamp(self) -> str | None:
        """The field that holds a record's event time (``timestamp=``), or ``None``.

        The field holds a ``datetime`` (a naive one is taken as UTC) or an integer of
        milliseconds since the epoch. Without it, a record's time is its own (Kafka)
        timestamp.
        """
        return self._timestamp

    def timestamp_of(self, record: T) -> int | None:
        """The event time of ``record`` from its ``timestamp`` field, in epoch milliseconds.

        ``None`` when the port declares no ``timestamp=`` or the field is ``None``.

        Raises a :class:`~streamlets.errors.CodecError` (an ``EncodeError`` for an outlet, a
        ``RecordValidationError`` for an inlet) when the field holds something else, or a
        time before 1970 (a Kafka timestamp cannot be negative).
        """
        read = self._read_timestamp
        return None if read is None else read(record)

    def _timestamp_reader(self, field: str) -> Callable[[Any], int | None]:
        get = _field_getter(self, field, "timestamp")
        error = self._metadata_error
        port = self

        def read(record: Any) -> int | None:
            value = get(record)
            try:
                ms = _epoch_ms(value)
            except TypeError:
                raise error(
                    f"{port._where()}: timestamp field '{field}' holds "
                    f"{type(value).__name__} {_short(value)}; it must hold a datetime or an "
                    "integer of milliseconds since the epoch"
                ) from None
            if ms is not None and ms < 0:
                raise error(
                    f"{port._where()}: timestamp field '{field}' is {_short(value)}, "
                    "before 1970-01-01; a record's timestamp is 0 or more milliseconds since "
                    "the epoch"
                )
            return ms

        return read

    def _where(self) -> str:
        """``Class.port (inlet)``: how messages name this port."""
        owner = self.owner.__name__ if self.owner else "?"
        return f"{owner}.{self.name or '?'} ({self.direction})"

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.owner = owner

    # Self, not Port[T]: ``self.alerts`` is the Outlet itself to a type checker, so
    # ``self.alerts.emit(...)`` and ``self.alerts.key_of(...)`` check.
    def __get__(self, instance: object | None, owner: type) -> Self:
        return self

    @property
    def schema(self) -> Schema:
        """The port's :class:`~streamlets.schema.Schema`, derived on first use.

        Raises :class:`~streamlets.errors.SchemaError` when the schema has no valid Avro form
        or comes from config (see :meth:`schema_for`).
        """
        if self._schema is None:
            if isinstance(self.source, FromConfig):
                raise SchemaError(
                    f"the schema of port '{self.name}' comes from config field "
                    f"'{self.source.field}'; use schema_for(config)"
                )
            self._schema = Schema.of(self.source)
        return self._schema

    def schema_for(self, config: BaseModel | None) -> Schema:
        """The port's schema for a streamlet configured with ``config``."""
        if not isinstance(self.source, FromConfig):
            return self.schema
        name = self.source.field
        value = getattr(config, name, None) if config is not None else None
        if value is None:
            # Named as the blueprint names it: by the field's alias when it has one.
            info = type(config).model_fields.get(name) if config is not None else None
            key = (info.alias if info is not None else None) or name
            raise SchemaError(
                f"port '{self.name}' takes its schema from the config key '{key}', which is "
                f"not set; set '{key}' to a pydantic model ('module:Class') or an Avro schema"
            )
        return Schema.of(value)

    @property
    def configured(self) -> bool:
        """Whether the schema comes from the streamlet's config (:class:`FromConfig`)."""
        return isinstance(self.source, FromConfig)

    @property
    def model(self) -> type[BaseModel] | None:
        """The pydantic model of the port, or ``None`` when its schema is an Avro dict."""
        src = self.source
        return src if isinstance(src, type) and issubclass(src, BaseModel) else None

    def __repr__(self) -> str:
        owner = self.owner.__name__ if self.owner else "?"
        schema = self.model.__name__ if self.model else "avro"
        return f"<{type(self).__name__} {owner}.{self.name}: {schema}>"


def _field_name(value: object, option: str, port: str) -> str | None:
    """``value`` as the field name of a ``key=``/``timestamp=`` option, checked once."""
    if value is None or (isinstance(value, str) and value):
        return value
    raise StreamletDefinitionError(
        f"{port}({option}=...) names a field of the port's schema, as a non-empty string; "
        f"got {value!r}"
    )


def _field_getter(port: Port[Any], field: str, option: str) -> Callable[[Any], Any]:
    """A function that reads ``field`` from a record of ``port``: a model instance or a dict.

    A dict without the field gives ``None``; verify checks that the schema has the field.
    """

    def get(record: Any) -> Any:
        if type(record) is dict:
            return record.get(field)
        try:
            return getattr(record, field)
        except AttributeError:
            if isinstance(record, Mapping):
                return record.get(field)
            raise port._metadata_error(
                f"{port._where()}: {option}={field!r} names no field of the record, a "
                f"{type(record).__name__}; name a field of the port's schema"
            ) from None

    return get


def _key_bytes(value: Any) -> bytes:
    """A key value other than ``str`` or ``None`` as bytes (see :meth:`Outlet.key_of`)."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


def _epoch_ms(value: Any) -> int | None:
    """Milliseconds since the epoch of a datetime (naive: UTC) or an integer of them.

    Raises ``TypeError`` for any other value but ``None``.
    """
    if isinstance(value, datetime):
        # A timedelta divides exactly, where float seconds (value.timestamp()) would round.
        if value.tzinfo is None or value.utcoffset() is None:
            return (value - _NAIVE_EPOCH) // _MS
        return (value - _EPOCH) // _MS
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    if value is None:
        return None
    raise TypeError(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Inlet(Port[T]):
    """An input port. ``Inlet(Model)`` receives ``Model`` instances; ``Inlet({...})`` dicts.

    A streamlet with several inlets says which method handles which inlet with
    :meth:`handler`::

        class Join(Streamlet):
            orders = Inlet(Order)
            payments = Inlet(Payment)
            out = Outlet(Event)

            @orders.handler
            def on_order(self, order: Order) -> Event | None: ...

            @payments.handler
            def on_payment(self, payment: Payment) -> Event | None: ...

    ``Inlet(Customer, table=True)`` makes the inlet a **table**: the runner keeps the
    latest record of each key (a tombstone, a record with a null value, deletes the key)
    and the handlers of the other inlets look it up with :meth:`get`. A table inlet has no
    handler of its own. ``table=True`` keeps the table per partition, like state:
    co-partitioned with the other inlets (same partition count, records keyed alike);
    ``table="global"``: every replica reads all of it, from the beginning of its topic.
    """

    direction = "inlet"
    _metadata_error = RecordValidationError
    #: How a bound table inlet looks a key up (set by the runner, see :meth:`bind_table`).
    _lookup: Callable[[bytes], Any] | None = None

    @overload
    def __init__(
        self: Inlet[M],
        schema: type[M],
        *,
        description: str = "",
        timestamp: str | None = None,
        optional: bool = False,
        table: TableKind = False,
    ) -> None: ...
    @overload
    def __init__(
        self: Inlet[dict[str, Any]],
        schema: Mapping[str, Any] | str | list[Any] | FromConfig,
        *,
        description: str = "",
        timestamp: str | None = None,
        optional: bool = False,
        table: TableKind = False,
    ) -> None: ...
    def __init__(
        self,
        schema: Any,
        *,
        description: str = "",
        timestamp: str | None = None,
        optional: bool = False,
        table: TableKind = False,
    ) -> None:
        super().__init__(schema, description=description, timestamp=timestamp)
        if not isinstance(optional, bool):
            raise StreamletDefinitionError(
                f"Inlet(optional=...) is True or False; got {optional!r}"
            )
        if table not in (False, True, "global") or type(table) not in (bool, str):
            raise StreamletDefinitionError(
                f"Inlet(table=...) is True (a table co-partitioned with the other inlets), "
                f"'global' (every replica holds all of it) or False; got {table!r}"
            )
        self._optional = optional
        self._table: TableKind = table

    @property
    def optional(self) -> bool:
        """Whether the inlet may stay unconnected (``optional=True``): verify notes it then.

        An unconnected optional inlet receives no records; the model-serving streamlet's
        ``control`` inlet is one.
        """
        return self._optional

    @property
    def table(self) -> TableKind:
        """``False`` for a stream, ``True`` for a co-partitioned table, ``"global"`` for a
        table every replica holds in full (``Inlet(..., table=...)``)."""
        return self._table

    def handler(self, func: H) -> H:
        """Mark ``func`` as the method that processes records arriving on this inlet."""
        func.__streamlets_inlet__ = self  # type: ignore[attr-defined]
        return func

    def get(self, key: str | bytes) -> T | None:
        """The latest record of ``key`` in this table, or ``None`` when it has none (never
        had one, or its last record was a tombstone).

        Text keys are UTF-8 encoded, as record keys are. A co-partitioned table
        (``table=True``) holds the keys of the partitions of the record being handled:
        look up the key the streamlet's records are keyed by (outside a handler, every
        partition this instance holds is looked in). Raises
        :class:`~streamlets.state.StateError` outside a runner, and for a key that belongs
        to another partition than the record being handled.
        """
        lookup = self._lookup
        if lookup is None:
            if not self._table:
                raise StreamletDefinitionError(
                    f"{self._where()} is not a table, so it has nothing to look up; declare "
                    f"it Inlet(..., table=True) to keep the latest record of each key"
                )
            raise StateError(
                f"table {self._where()} is looked up outside a runner; run the streamlet "
                "with runner.testkit.run_streamlet(...) to test it"
            )
        return cast("T | None", lookup(key.encode() if isinstance(key, str) else bytes(key)))

    def bind_table(self, instance: object, lookup: Callable[[bytes], Any]) -> Inlet[T]:
        """A copy of this table inlet for ``instance`` whose :meth:`get` calls ``lookup``
        (the runner calls this before ``setup()``)."""
        bound = copy.copy(self)
        bound._lookup = lookup
        instance.__dict__[self.name] = bound
        return bound


class Outlet(Port[T]):
    """An output port. A streamlet with several outlets routes each result with :meth:`emit`::

    def process(self, reading: Reading) -> Iterator[Routed[Any]]:
        if reading.valid:
            yield self.valid.emit(reading)
        else:
            yield self.invalid.emit(Rejected(reason="..."))
    """

    direction = "outlet"
    _metadata_error = EncodeError

    @overload
    def __init__(
        self: Outlet[M],
        schema: type[M],
        *,
        description: str = "",
        key: str | KeyFunction[M] | None = None,
        timestamp: str | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self: Outlet[dict[str, Any]],
        schema: Mapping[str, Any] | str | list[Any] | FromConfig,
        *,
        description: str = "",
        key: str | KeyFunction[dict[str, Any]] | None = None,
        timestamp: str | None = None,
    ) -> None: ...
    def __init__(
        self,
        schema: Any,
        *,
        description: str = "",
        key: str | KeyFunction[Any] | None = None,
        timestamp: str | None = None,
    ) -> None:
        super().__init__(schema, description=description, timestamp=timestamp)
        self._key: str | KeyFunction[Any] | None
        if callable(key):
            self._key = key
            self._read_key: Callable[[Any], Any] | None = key
        else:
            self._key = _field_name(key, "key", "Outlet")
            self._read_key = None if self._key is None else _field_getter(self, self._key, "key")

    @property
    def key(self) -> str | KeyFunction[T] | None:
        """How a record's key is made (``key=``): a field of the schema, a function, or ``None``.

        ``None`` means the outlet declares no key: a record produced while handling an input
        keeps the input's key (or has none).
        """
        return self._key

    def key_of(self, record: T) -> bytes | None:
        """The key of ``record`` as bytes by the outlet's ``key=``; ``None`` without a key.

        A ``str`` is encoded as UTF-8, ``bytes`` are kept as they are, an enum member gives
        its value, any other value its ``str()``; ``None`` stays ``None`` (no key).
        """
        read = self._read_key
        if read is None:
            return None
        value = read(record)
        if type(value) is str:
            return value.encode()
        return None if value is None else _key_bytes(value)

    def emit(
        self,
        record: T,
        *,
        key: str | bytes | _Keep | None = KEEP,
        timestamp: datetime | int | _Keep | None = KEEP,
        headers: Mapping[str, str | bytes] | None = None,
    ) -> Routed[T]:
        """Wrap ``record`` so the runner sends it to this outlet.

        A record keeps the key, timestamp and headers of the input it was made from (or,
        where the outlet declares ``key=``/``timestamp=``, takes them from its fields);
        ``key`` (text is UTF-8 encoded; ``None``: no key), ``timestamp`` (an aware or UTC
        datetime, or epoch milliseconds; ``None``: the time it is produced) and ``headers``
        (added to the inherited ones, replacing those of the same name) say otherwise.
        """
        return Routed(self, record, key, timestamp, headers)

    def tombstone(
        self,
        key: str | bytes,
        *,
        timestamp: datetime | int | _Keep | None = KEEP,
        headers: Mapping[str, str | bytes] | None = None,
    ) -> Routed[T]:
        """A tombstone for this outlet: a record of ``key`` with a null value, which deletes
        the key from a table that reads the topic (and from a compacted topic, in time).

        It keeps the input's timestamp and headers unless told otherwise, as :meth:`emit`;
        it has no value to validate or encode.
        """
        if key is None or not isinstance(key, str | bytes):
            raise StreamletDefinitionError(
                f"{self._where()}: tombstone(key) needs the key to delete, as str or bytes; "
                f"got {key!r}"
            )
        return Routed(self, cast(T, TOMBSTONE), key, timestamp, headers)


@dataclass(frozen=True, slots=True)
class Routed(Generic[T]):
    """A result addressed to one outlet, with its metadata; created by :meth:`Outlet.emit`."""

    outlet: Outlet[T]
    record: T
    key: str | bytes | _Keep | None = KEEP
    timestamp: datetime | int | _Keep | None = KEEP
    headers: Mapping[str, str | bytes] | None = None

    @property
    def plain(self) -> bool:
        """Whether the record keeps the metadata it would get anyway."""
        return self.key is KEEP and self.timestamp is KEEP and not self.headers
