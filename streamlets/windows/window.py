"""``Window``: a windowed aggregation declared on a streamlet class, like a port or a state.

::

    class MinuteStats(Streamlet):
        readings = Inlet(Reading, timestamp="at")
        stats = Outlet(Stats, key="sensor_id")

        per_minute = Window(
            Tumbling("1m", grace="5s"),
            {"avg": Mean("temperature"), "hi": Max("temperature"), "n": Count()},
        )

        @per_minute.on_close
        def minute(self, window: Windowed[dict[str, Any]]) -> Stats:
            return Stats(sensor_id=window.key, minute=window.start, **window.value)

Every record of the window's inlet (the only inlet, or ``inlet=``) goes to the window,
after the inlet's handler when the streamlet has one (a streamlet whose inlet only feeds
windows needs no ``process``). The window is keyed by the record's key (or ``key=``: a
field or a function of the record) and timed by the record's event time (or
``timestamp=``: a field holding a datetime or epoch milliseconds). What a window emits is
what its ``on_close`` hook returns for it, like a handler's result; without one it emits a
record ``{key, start, end, <one field per aggregate>}`` (``value`` for a single aggregate)
to the only outlet. Either way an output's key is the window's key and its timestamp the
window's end.

A user-defined aggregate may take its functions from methods of the streamlet::

    per_session = Window(Session("30m"), Aggregate(Visits, initial=Visits))

    @per_session.add
    def visit(self, acc: Visits, click: Click) -> Visits: ...

    @per_session.merge
    def merge(self, a: Visits, b: Visits) -> Visits: ...

``emit="final"`` (the default) emits each window once, when it closes;
``emit="every"`` emits a window each time a record changes it (nothing more when it
closes). A record that comes after all its windows closed is late (see
:mod:`streamlets.windows.specs`): counted, and skipped or, with ``late="dead-letter"``,
sent to the dead letters (stage ``late``). When a bounded run ends, every open window
closes and is emitted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar, overload

from pydantic import BaseModel

from streamlets.errors import RecordValidationError, StreamletDefinitionError
from streamlets.meta import from_epoch_ms
from streamlets.ports import FromConfig, Inlet, _epoch_ms, _key_bytes
from streamlets.schema import Schema
from streamlets.state import State
from streamlets.windows.aggregates import (
    Aggregate,
    BoundAggregate,
    WindowDefinitionError,
    bind_aggregates,
)
from streamlets.windows.engine import Engine, make_engine
from streamlets.windows.fields import field_getter, field_names
from streamlets.windows.specs import Session, WindowSpec

__all__ = ["EMIT_MODES", "LATE_POLICIES", "BoundWindow", "Window", "WindowState", "Windowed"]

V = TypeVar("V")
F = TypeVar("F", bound=Callable[..., Any])

EmitMode = Literal["final", "every"]
LatePolicy = Literal["skip", "dead-letter"]
EMIT_MODES: tuple[str, ...] = ("final", "every")
LATE_POLICIES: tuple[str, ...] = ("skip", "dead-letter")
_HOOKS = ("add", "merge", "on_close")


@dataclass(frozen=True, slots=True)
class Windowed(Generic[V]):
    """A window's result, as its ``on_close`` hook gets it: the window's key, bounds and
    aggregate value; ``final`` is false for an update (``emit="every"``).

    ``start`` and ``end`` are aware UTC datetimes (``start_ms``/``end_ms`` epoch
    milliseconds): ``[start, end)`` for tumbling and hopping windows, ``[start, end]`` for
    sliding windows and sessions (a session's first and last record).
    """

    window: str
    raw_key: bytes
    start_ms: int
    end_ms: int
    value: V
    final: bool = True

    @property
    def key(self) -> str:
        """The key as text (UTF-8; undecodable bytes replaced)."""
        return self.raw_key.decode("utf-8", "replace")

    @property
    def start(self) -> datetime:
        """The window's start."""
        return from_epoch_ms(self.start_ms)

    @property
    def end(self) -> datetime:
        """The window's end."""
        return from_epoch_ms(self.end_ms)


class WindowState(State[bytes]):
    """Where a window keeps its windows: a state of the streamlet named after the window
    (so it is stored, changelogged and restored as any state), holding entries of the
    window's own making (see :mod:`streamlets.windows.engine`). Not bound to instances:
    the window's attribute stays the :class:`Window`."""

    internal = True

    def bind(self, instance: object, backend: Any) -> State[bytes]:
        """Nothing to bind: the runner's window runtime uses the state, handlers do not."""
        return self


def _nothing(record: Any) -> None:
    """The handler of an inlet whose records only go to windows."""
    return None


class Window(Generic[V]):
    """A windowed aggregation over the records of one inlet (see the module docstring).

    ``spec`` is a window type (``Tumbling``, ``Hopping``, ``Sliding``, ``Session``);
    ``aggregate`` a built-in aggregate, a user-defined :class:`Aggregate`, or a mapping of
    names to aggregates. Any of ``spec``, ``aggregate``, ``key``, ``timestamp``, ``emit``
    and ``late`` may be a :class:`~streamlets.FromConfig`, taking the value of that config
    field (the library's ``WindowAggregate`` is configured so).
    """

    @overload
    def __init__(
        self: Window[dict[str, Any]],
        spec: WindowSpec | FromConfig,
        aggregate: Mapping[str, Aggregate[Any, Any]],
        *,
        inlet: Inlet[Any] | str | None = None,
        key: str | Callable[[Any], str | bytes | None] | FromConfig | None = None,
        timestamp: str | FromConfig | None = None,
        emit: EmitMode | FromConfig = "final",
        late: LatePolicy | FromConfig = "skip",
        description: str = "",
    ) -> None: ...
    @overload
    def __init__(
        self: Window[V],
        spec: WindowSpec | FromConfig,
        aggregate: Aggregate[Any, V],
        *,
        inlet: Inlet[Any] | str | None = None,
        key: str | Callable[[Any], str | bytes | None] | FromConfig | None = None,
        timestamp: str | FromConfig | None = None,
        emit: EmitMode | FromConfig = "final",
        late: LatePolicy | FromConfig = "skip",
        description: str = "",
    ) -> None: ...
    @overload
    def __init__(
        self: Window[Any],
        spec: WindowSpec | FromConfig,
        aggregate: FromConfig,
        *,
        inlet: Inlet[Any] | str | None = None,
        key: str | Callable[[Any], str | bytes | None] | FromConfig | None = None,
        timestamp: str | FromConfig | None = None,
        emit: EmitMode | FromConfig = "final",
        late: LatePolicy | FromConfig = "skip",
        description: str = "",
    ) -> None: ...
    def __init__(
        self,
        spec: WindowSpec | FromConfig,
        aggregate: Any,
        *,
        inlet: Inlet[Any] | str | None = None,
        key: str | Callable[[Any], str | bytes | None] | FromConfig | None = None,
        timestamp: str | FromConfig | None = None,
        emit: EmitMode | FromConfig = "final",
        late: LatePolicy | FromConfig = "skip",
        description: str = "",
    ) -> None:
        if not isinstance(spec, WindowSpec | FromConfig):
            raise WindowDefinitionError(
                f"Window(...) takes a window type first (Tumbling('1m'), Hopping('5m', '1m'), "
                f"Sliding('1m'), Session('30m')); got {spec!r}"
            )
        if not isinstance(emit, FromConfig) and emit not in EMIT_MODES:
            raise WindowDefinitionError(f"Window(emit=...) is 'final' or 'every'; got {emit!r}")
        if not isinstance(late, FromConfig) and late not in LATE_POLICIES:
            raise WindowDefinitionError(
                f"Window(late=...) is 'skip' or 'dead-letter'; got {late!r}"
            )
        if inlet is not None and not isinstance(inlet, Inlet | str):
            raise WindowDefinitionError(f"Window(inlet=...) is an Inlet or its name; got {inlet!r}")
        self.spec = spec
        self.aggregate = aggregate
        self._inlet = inlet
        self.key = key
        self.timestamp = timestamp
        self.emit = emit
        self.late = late
        self.description = description
        self.name = ""
        self.owner: type | None = None
        self.hooks: dict[str, str] = {}
        self.state = WindowState(bytes, description=f"the windows of {description or 'a window'}")

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.owner = owner
        self.state.__set_name__(owner, name)

    # -- hooks ----------------------------------------------------------------------------

    def _hook(self, role: str, func: F) -> F:
        name = getattr(func, "__name__", None)
        if not callable(func) or not name:
            raise WindowDefinitionError(f"@window.{role} decorates a method; got {func!r}")
        self.hooks[role] = name
        return func

    def add(self, func: F) -> F:
        """Mark ``func(self, acc, record) -> acc`` as the window's aggregate's ``add``."""
        return self._hook("add", func)

    def merge(self, func: F) -> F:
        """Mark ``func(self, a, b) -> acc`` as its ``merge`` (session windows)."""
        return self._hook("merge", func)

    def on_close(self, func: F) -> F:
        """Mark ``func(self, window: Windowed[V]) -> records`` as what the window emits."""
        return self._hook("on_close", func)

    # -- declaration ----------------------------------------------------------------------

    def inlet_name(self, inlets: Mapping[str, Inlet[Any]]) -> str | None:
        """The inlet whose records go to this window (``None``: none can be told)."""
        given = self._inlet
        if isinstance(given, Inlet):
            return given.name
        if isinstance(given, str):
            return given
        return next(iter(inlets)) if len(inlets) == 1 else None

    def definition_problems(self, cls: Any) -> list[str]:
        """What keeps this window of streamlet class ``cls`` from running."""
        problems = []
        where = f"window '{self.name}'"
        inlets = cls.inlets()
        inlet = self.inlet_name(inlets)
        if inlet is None:
            problems.append(
                f"{where} does not say which inlet it takes (Window(..., inlet=...)): the "
                f"streamlet has {len(inlets)} inlets"
            )
        elif inlet not in inlets:
            problems.append(
                f"{where} takes inlet '{inlet}', which the streamlet does not have "
                f"(its inlets: {', '.join(inlets) or 'none'})"
            )
        for role, attr in self.hooks.items():
            if not callable(getattr(cls, attr, None)):
                problems.append(f"{where}'s @{self.name}.{role} hook '{attr}' is not a method")
        aggregate = self.aggregate
        if isinstance(aggregate, Aggregate) and type(aggregate) is not Aggregate:
            for role in ("add", "merge"):
                if role in self.hooks:
                    problems.append(
                        f"{where} has a @{self.name}.{role} method, but its aggregate "
                        f"{aggregate!r} is a built-in one; declare Aggregate(schema, "
                        "initial=...) for an aggregate of your own"
                    )
        if type(aggregate) is Aggregate and aggregate.add is None and "add" not in self.hooks:
            problems.append(
                f"{where}: its Aggregate has no add function; give Aggregate(..., add=...) "
                f"or decorate a method with @{self.name}.add"
            )
        session = isinstance(self.spec, Session)
        if session and not isinstance(aggregate, FromConfig) and not self._merges(aggregate):
            problems.append(
                f"{where} is a session window, which merges sessions, and its aggregate "
                f"has no merge; give Aggregate(..., merge=...) or decorate a method "
                f"with @{self.name}.merge"
            )
        if "on_close" not in self.hooks and len(cls.outlets()) != 1:
            problems.append(
                f"{where} has no @{self.name}.on_close method, so its results go to the "
                f"only outlet, and the streamlet has {len(cls.outlets())}"
            )
        if (
            inlet in inlets
            and not inlets[inlet].configured
            and not isinstance(aggregate, FromConfig)
        ):
            try:
                self._bind_aggregate(inlets[inlet].schema, None)
            except (StreamletDefinitionError, ValueError, TypeError) as exc:
                problems.append(f"{where}: {exc}")
            if isinstance(self.key, str) or isinstance(self.timestamp, str):
                fields = field_names(inlets[inlet].schema)
                for option in ("key", "timestamp"):
                    value = getattr(self, option)
                    if isinstance(value, str) and value not in fields:
                        problems.append(
                            f"{where}: {option}='{value}' names no field of inlet '{inlet}' "
                            f"(its fields: {', '.join(fields) or 'none'})"
                        )
        return problems

    def _merges(self, aggregate: Any) -> bool:
        if "merge" in self.hooks:
            return True
        if isinstance(aggregate, Aggregate):
            return type(aggregate) is not Aggregate or aggregate.merge is not None
        if isinstance(aggregate, Mapping):
            return all(self._merges(a) for a in aggregate.values())
        return False

    def _bind_aggregate(self, schema: Schema, instance: object | None) -> BoundAggregate:
        aggregate = self.aggregate
        if type(aggregate) is Aggregate and (self.hooks.get("add") or self.hooks.get("merge")):
            add = aggregate.add
            merge = aggregate.merge
            if instance is not None:
                if "add" in self.hooks:
                    add = getattr(instance, self.hooks["add"])
                if "merge" in self.hooks:
                    merge = getattr(instance, self.hooks["merge"])
            elif add is None:
                add = _placeholder_add
            aggregate = Aggregate(
                aggregate.schema,
                initial=aggregate.initial,
                add=add,
                merge=merge or (_placeholder_merge if "merge" in self.hooks else None),
                result=aggregate.result,
            )
        if not isinstance(aggregate, Aggregate | Mapping):
            raise WindowDefinitionError(
                f"its aggregate is {aggregate!r}; use Count(), Sum('field'), Mean('field'), "
                "Min, Max, First, Last, an Aggregate(...) or a mapping of names to them"
            )
        return bind_aggregates(aggregate, schema)

    def resolve(self, instance: Any, inlet_schema: Schema) -> BoundWindow:
        """This window for one streamlet instance: config values taken, hooks bound, the
        aggregate made for ``inlet_schema`` (raises :class:`WindowDefinitionError`)."""
        config = getattr(instance, "config", None)

        def value(option: Any, what: str) -> Any:
            if not isinstance(option, FromConfig):
                return option
            if config is None or not hasattr(config, option.field):
                raise WindowDefinitionError(
                    f"window '{self.name}' takes its {what} from config field "
                    f"'{option.field}', which the streamlet's Config does not have"
                )
            return getattr(config, option.field)

        spec = value(self.spec, "window type")
        if not isinstance(spec, WindowSpec):
            raise WindowDefinitionError(f"window '{self.name}': {spec!r} is not a window type")
        resolved = Window(
            spec,
            value(self.aggregate, "aggregates"),
            inlet=self._inlet,
            key=value(self.key, "key"),
            timestamp=value(self.timestamp, "timestamp"),
            emit=value(self.emit, "emit mode"),
            late=value(self.late, "late policy"),
        )
        resolved.name = self.name
        resolved.hooks = dict(self.hooks)
        aggregate = resolved._bind_aggregate(inlet_schema, instance)
        on_close = getattr(instance, self.hooks["on_close"]) if "on_close" in self.hooks else None
        return BoundWindow(
            name=self.name,
            inlet=self.inlet_name(type(instance).inlets()) or "",
            spec=spec,
            aggregate=aggregate,
            key_of=_key_reader(resolved.key, inlet_schema),  # type: ignore[arg-type]
            time_of=_time_reader(resolved.timestamp, inlet_schema, self.name),  # type: ignore[arg-type]
            every=resolved.emit == "every",
            dead_letter_late=resolved.late == "dead-letter",
            on_close=on_close,
            records=inlet_schema,
        )

    def handler(self) -> Callable[[Any], Any]:
        """What handles a record of an inlet that only feeds windows: nothing."""
        return _nothing

    def __repr__(self) -> str:
        owner = self.owner.__name__ if self.owner else "?"
        return f"<Window {owner}.{self.name or '?'}>"


def _placeholder_add(acc: Any, record: Any) -> Any:  # pragma: no cover - never run
    return acc


def _placeholder_merge(a: Any, b: Any) -> Any:  # pragma: no cover - never run
    return a


@dataclass(frozen=True, slots=True)
class BoundWindow:
    """A window of one streamlet instance, as the runner runs it."""

    name: str
    inlet: str
    spec: WindowSpec
    aggregate: BoundAggregate
    #: ``key_of(record, record_key)``: the window's key (``None``: none)
    key_of: Callable[[Any, bytes | None], bytes | None]
    #: ``time_of(record, event_time)``: the record's time in the window
    time_of: Callable[[Any, int], int]
    every: bool
    dead_letter_late: bool
    on_close: Callable[[Windowed[Any]], Any] | None
    records: Schema

    def engine(self) -> Engine:
        """A new engine for one partition of this window."""
        return make_engine(self.spec, self.aggregate, every=self.every, records=self.records)

    def default_result(self, window: Windowed[Any], outlet_schema: Schema) -> Any:
        """The record a window without ``on_close`` emits: ``{key, start, end, ...}`` with
        the aggregates' results (``value`` for a single aggregate), for the outlet's
        schema."""
        data: dict[str, Any] = {"key": window.key, "start": window.start, "end": window.end}
        if isinstance(window.value, dict):
            data.update(window.value)
        else:
            data["value"] = window.value
        model: type[BaseModel] | None = outlet_schema.model
        return data if model is None else model.model_validate(data)


def _key_reader(
    key: str | Callable[[Any], Any] | None, schema: Schema
) -> Callable[[Any, bytes | None], bytes | None]:
    if key is None:
        return _record_key
    get = field_getter(schema, key) if isinstance(key, str) else key

    def from_record(record: Any, raw: bytes | None) -> bytes | None:
        value = get(record)
        if value is None:
            return None
        if type(value) is str:
            return value.encode()
        return _key_bytes(value)

    return from_record


def _record_key(record: Any, raw: bytes | None) -> bytes | None:
    return raw


def _time_reader(field: str | None, schema: Schema, window: str) -> Callable[[Any, int], int]:
    if field is None:
        return _event_time
    get = field_getter(schema, field)

    def from_field(record: Any, event_time: int) -> int:
        value = get(record)
        try:
            ms = _epoch_ms(value)
        except TypeError:
            raise RecordValidationError(
                f"window '{window}': timestamp field '{field}' holds {type(value).__name__} "
                f"{value!r}; it must hold a datetime or an integer of epoch milliseconds"
            ) from None
        return event_time if ms is None else ms

    return from_field


def _event_time(record: Any, event_time: int) -> int:
    return event_time
