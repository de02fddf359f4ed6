"""Inlets and outlets: the typed ports a streamlet declares as class attributes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from pydantic import BaseModel

from streamlets.errors import SchemaError
from streamlets.schema import Schema

__all__ = ["FromConfig", "Inlet", "Outlet", "Port", "Routed"]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
H = TypeVar("H", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class FromConfig:
    """A port schema taken from a config parameter, for reusable (library) streamlets.

    ``Outlet(FromConfig("model"))`` uses the value of the streamlet's config field ``model``:
    a pydantic model class (declare the field as ``pydantic.ImportString[type[BaseModel]]``
    so a blueprint can say ``model: my.module:Reading``) or an Avro schema dict.
    """

    field: str


SchemaSource = type[BaseModel] | Mapping[str, Any] | str | list[Any] | FromConfig


class Port(Generic[T]):
    """A named, typed end of a topic connection; subclassed by :class:`Inlet` and :class:`Outlet`.

    The port's name is the attribute name it is assigned to in the streamlet class body.
    Its schema is a pydantic model class (records are model instances) or an Avro schema
    (records are plain dicts).
    """

    direction: str = "port"

    def __init__(self, schema: Any, *, description: str = "") -> None:
        self.source: SchemaSource = schema
        self.description = description
        self.name: str = ""
        self.owner: type | None = None
        self._schema: Schema | None = None

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.owner = owner

    @overload
    def __get__(self, instance: None, owner: type) -> Port[T]: ...
    @overload
    def __get__(self, instance: object, owner: type) -> Port[T]: ...
    def __get__(self, instance: object | None, owner: type) -> Port[T]:
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
            raise SchemaError(
                f"port '{self.name}' takes its schema from config field '{name}', which is "
                f"not set; set '{name}' to a pydantic model ('module:Class') or an Avro schema"
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
    """

    direction = "inlet"

    @overload
    def __init__(self: Inlet[M], schema: type[M], *, description: str = "") -> None: ...
    @overload
    def __init__(
        self: Inlet[dict[str, Any]],
        schema: Mapping[str, Any] | str | list[Any] | FromConfig,
        *,
        description: str = "",
    ) -> None: ...
    def __init__(self, schema: Any, *, description: str = "") -> None:
        super().__init__(schema, description=description)

    def handler(self, func: H) -> H:
        """Mark ``func`` as the method that processes records arriving on this inlet."""
        func.__streamlets_inlet__ = self  # type: ignore[attr-defined]
        return func


class Outlet(Port[T]):
    """An output port. A streamlet with several outlets routes each result with :meth:`emit`::

    def process(self, reading: Reading) -> Iterator[Routed[Any]]:
        if reading.valid:
            yield self.valid.emit(reading)
        else:
            yield self.invalid.emit(Rejected(reason="..."))
    """

    direction = "outlet"

    @overload
    def __init__(self: Outlet[M], schema: type[M], *, description: str = "") -> None: ...
    @overload
    def __init__(
        self: Outlet[dict[str, Any]],
        schema: Mapping[str, Any] | str | list[Any] | FromConfig,
        *,
        description: str = "",
    ) -> None: ...
    def __init__(self, schema: Any, *, description: str = "") -> None:
        super().__init__(schema, description=description)

    def emit(self, record: T) -> Routed[T]:
        """Wrap ``record`` so the runner sends it to this outlet."""
        return Routed(self, record)


@dataclass(frozen=True, slots=True)
class Routed(Generic[T]):
    """A result addressed to one outlet; created by :meth:`Outlet.emit`."""

    outlet: Outlet[T]
    record: T
