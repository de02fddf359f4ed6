"""The Streamlet base class: a small, typed processing step with declared ports and config."""

from __future__ import annotations

import difflib
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from streamlets.errors import ConfigError
from streamlets.ports import Inlet, Outlet
from streamlets.state import State
from streamlets.tables import TableState
from streamlets.timers import TIMER_ATTRIBUTE
from streamlets.windows.window import Window

if TYPE_CHECKING:
    from streamlets.schema import Schema

__all__ = ["ON_ERROR_POLICIES", "NoConfig", "OnError", "Streamlet"]

OnError = Literal["dead-letter", "skip", "fail"]
ON_ERROR_POLICIES: tuple[str, ...] = ("dead-letter", "skip", "fail")


class NoConfig(BaseModel):
    """The configuration of a streamlet that declares no ``Config``: it takes no keys."""

    model_config = ConfigDict(extra="forbid")


class Streamlet:
    """Base class of every streamlet.

    Declare ports as class attributes (``readings = Inlet(Reading)``), keyed state likewise
    (``spent = State(float, default=0.0)``, see :class:`~streamlets.state.State`), tables
    as inlets (``customers = Inlet(Customer, table=True)``, looked up with
    ``self.customers.get(key)``), windowed aggregations (``per_minute =
    Window(Tumbling("1m"), Mean("temperature"))``, see :mod:`streamlets.windows`), config
    parameters as a nested pydantic model named ``Config``, and implement:

    - ``process(record)`` when the streamlet has inlets. It returns ``None`` (nothing), one
      record (sent to the only outlet), an :class:`~streamlets.ports.Routed` record
      (``self.alerts.emit(alert)``) or an iterable of those. ``async def`` is allowed.
      With several inlets, mark one method per inlet with ``@inlet.handler``. Table inlets
      have no handler: ``process`` handles the one other inlet. An inlet whose records
      only go to windows needs none either.
    - ``generate()`` when it has no inlets (a source): an iterable or async iterable of
      records. The source is bounded when the iterable ends.

    A method marked ``@timer(seconds=N)`` (see :mod:`streamlets.timers`) is called every N
    seconds and returns records as ``process`` does.

    Optional hooks ``setup()`` and ``teardown()`` (sync or async) run once per instance
    before the first and after the last record. ``on_error`` chooses what happens to a
    record that fails to decode, validate or process: ``"dead-letter"`` (default),
    ``"skip"`` or ``"fail"``; the blueprint can override it per streamlet.
    """

    Config: ClassVar[type[BaseModel]] = NoConfig
    on_error: ClassVar[OnError] = "dead-letter"
    #: Inlets that every replica reads in full, from the beginning of their topic, instead
    #: of sharing the records with the other replicas: control and state streams (the
    #: latest record on a compacted topic survives restarts). Offsets of these inlets are
    #: never committed. Global table inlets (``Inlet(..., table="global")``) are added to
    #: them.
    replay_inlets: ClassVar[tuple[str, ...]] = ()
    #: The replay inlets the class itself declares (``replay_inlets`` without its global
    #: tables).
    __declared_replay__: ClassVar[tuple[str, ...]] = ()

    __inlets__: ClassVar[Mapping[str, Inlet[Any]]] = MappingProxyType({})
    __outlets__: ClassVar[Mapping[str, Outlet[Any]]] = MappingProxyType({})
    __handlers__: ClassVar[Mapping[str, str]] = MappingProxyType({})
    __states__: ClassVar[Mapping[str, State[Any]]] = MappingProxyType({})
    __windows__: ClassVar[Mapping[str, Window[Any]]] = MappingProxyType({})
    __timers__: ClassVar[Mapping[str, float]] = MappingProxyType({})
    __tables__: ClassVar[Mapping[str, Inlet[Any]]] = MappingProxyType({})

    config: Any
    name: str
    #: Whether this instance takes over from an earlier process of the same run that
    #: crashed or was stopped (set by the runner before ``setup()``): a sink then keeps
    #: what that process wrote, and the records after its last commit come again.
    resuming: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        inlets: dict[str, Inlet[Any]] = {}
        outlets: dict[str, Outlet[Any]] = {}
        handlers: dict[str, str] = {}
        states: dict[str, State[Any]] = {}
        windows: dict[str, Window[Any]] = {}
        timers: dict[str, float] = {}
        # Walk base classes first so a subclass can override an inherited port by name
        # while the declaration order of the bases is kept.
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                if isinstance(value, Inlet | Outlet | State | Window):
                    for found in (inlets, outlets, states, windows):
                        found.pop(attr, None)
                if isinstance(value, Inlet):
                    inlets[attr] = value
                elif isinstance(value, Outlet):
                    outlets[attr] = value
                elif isinstance(value, State):
                    states[attr] = value
                elif isinstance(value, Window):
                    windows[attr] = value
                    # A window keeps its windows in a state of its own name: stored,
                    # changelogged and restored with the streamlet's other states.
                    states[attr] = value.state
                elif attr in inlets or attr in outlets or attr in states:
                    # A plain attribute shadows an inherited port or state: it is gone.
                    for found in (inlets, outlets, states, windows):
                        found.pop(attr, None)
                period = getattr(value, TIMER_ATTRIBUTE, None)
                if isinstance(period, float) and callable(value):
                    timers[attr] = period
                else:
                    timers.pop(attr, None)  # overridden by a method that is no timer
                target = getattr(value, "__streamlets_inlet__", None)
                if isinstance(target, Inlet) and callable(value):
                    handlers[target.name] = attr
        tables = {name: inlet for name, inlet in inlets.items() if inlet.table}
        for name, inlet in tables.items():
            if inlet.table is True:  # kept per partition, as state of the inlet's name
                states[name] = TableState(inlet, cls)
        declared = tuple(vars(cls).get("replay_inlets", cls.__declared_replay__))
        cls.__declared_replay__ = declared
        cls.replay_inlets = declared + tuple(
            name
            for name, inlet in tables.items()
            if inlet.table == "global" and name not in declared
        )
        cls.__inlets__ = MappingProxyType(inlets)
        cls.__outlets__ = MappingProxyType(outlets)
        cls.__handlers__ = MappingProxyType(handlers)
        cls.__states__ = MappingProxyType(states)
        cls.__windows__ = MappingProxyType(windows)
        cls.__timers__ = MappingProxyType(timers)
        cls.__tables__ = MappingProxyType(tables)

    def __init__(
        self, config: BaseModel | Mapping[str, Any] | None = None, *, name: str = ""
    ) -> None:
        """Create an instance with ``config`` validated by the class's ``Config`` model.

        Raises :class:`~streamlets.errors.ConfigError` when the config does not validate.
        """
        self.name = name or type(self).__name__
        self.config = self.validate_config(config)

    # -- introspection -------------------------------------------------------------------

    @classmethod
    def inlets(cls) -> Mapping[str, Inlet[Any]]:
        """The streamlet's inlets by name, in declaration order."""
        return cls.__inlets__

    @classmethod
    def outlets(cls) -> Mapping[str, Outlet[Any]]:
        """The streamlet's outlets by name, in declaration order."""
        return cls.__outlets__

    @classmethod
    def states(cls) -> Mapping[str, State[Any]]:
        """The streamlet's keyed states (:class:`~streamlets.state.State`) by name, with a
        :class:`~streamlets.tables.TableState` for each co-partitioned table inlet."""
        return cls.__states__

    @classmethod
    def windows(cls) -> Mapping[str, Window[Any]]:
        """The streamlet's windows (:class:`~streamlets.windows.Window`) by name."""
        return cls.__windows__

    @classmethod
    def timers(cls) -> Mapping[str, float]:
        """The streamlet's timers (methods marked ``@timer``) by name, with their period in
        seconds."""
        return cls.__timers__

    @classmethod
    def tables(cls) -> Mapping[str, Inlet[Any]]:
        """The streamlet's table inlets (``Inlet(..., table=...)``) by name."""
        return cls.__tables__

    @classmethod
    def kind(cls) -> str:
        """``"source"`` (no inlets), ``"sink"`` (no outlets) or ``"processor"``."""
        if not cls.__inlets__:
            return "source"
        if not cls.__outlets__:
            return "sink"
        return "processor"

    @classmethod
    def validate_config(cls, config: BaseModel | Mapping[str, Any] | None) -> BaseModel:
        """Validate ``config`` with the class's ``Config`` model and return the instance.

        A mapping with a key the model does not have raises
        :class:`~streamlets.errors.ConfigError`, as ``flow verify`` reports it (unless the
        model takes extra keys, ``extra="allow"``).
        """
        model = cls.Config
        if isinstance(config, model):
            return config
        data: Any = {} if config is None else config
        if isinstance(data, BaseModel):
            data = data.model_dump()
        elif isinstance(data, Mapping):
            cls._refuse_unknown_keys(data)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"invalid config for {cls.__name__}: {exc}") from exc

    @classmethod
    def _refuse_unknown_keys(cls, data: Mapping[str, Any]) -> None:
        """Raise :class:`ConfigError` for a key ``Config`` does not have (as verify does):
        pydantic would drop it silently, and the value meant for it would be lost."""
        model = cls.Config
        if model.model_config.get("extra") == "allow":
            return
        names = {info.alias or name for name, info in model.model_fields.items()}
        names |= set(model.model_fields)
        unknown = [key for key in data if key not in names]
        if not unknown:
            return
        key = unknown[0]
        close = difflib.get_close_matches(str(key), sorted(names), n=1)
        hint = f"did you mean '{close[0]}'?" if close else "remove it"
        known = ", ".join(model.model_fields) or "no keys"
        raise ConfigError(
            f"invalid config for {cls.__name__}: unknown config key '{key}' "
            f"({cls.__name__}.Config has {known}); {hint}"
        )

    @classmethod
    def definition_problems(cls) -> list[str]:
        """What keeps this class from running, as sentences (empty when it can run)."""
        problems: list[str] = []
        if not (isinstance(cls.Config, type) and issubclass(cls.Config, BaseModel)):
            problems.append("its Config is not a pydantic BaseModel subclass")
        unknown = [i for i in cls.replay_inlets if i not in cls.__inlets__]
        if unknown:
            problems.append(
                f"replay_inlets names {', '.join(map(repr, unknown))}, which is not an inlet"
            )
        if cls.on_error not in ON_ERROR_POLICIES:
            problems.append(
                f"on_error is {cls.on_error!r}; expected one of {', '.join(ON_ERROR_POLICIES)}"
            )
        overrides_process = cls.process is not Streamlet.process
        windowed = {w.inlet_name(cls.__inlets__) for w in cls.__windows__.values()}
        for window in cls.__windows__.values():
            problems.extend(window.definition_problems(cls))
        for table in cls.__tables__:
            if table in cls.__handlers__:
                problems.append(
                    f"inlet '{table}' is a table, which the runner keeps up to date: it takes "
                    f"no handler, but {cls.__handlers__[table]}() is marked @{table}.handler; "
                    f"look the table up with self.{table}.get(key) from the other handlers"
                )
        if cls.__inlets__:
            # An inlet whose records only go to windows, or a table inlet, needs no handler.
            missing = [
                i
                for i in cls.__inlets__
                if i not in cls.__handlers__ and i not in windowed and i not in cls.__tables__
            ]
            if missing and not overrides_process:
                problems.append(
                    f"it has inlets ({', '.join(missing)}) but defines no process() "
                    "or @inlet.handler method for them"
                )
        elif cls.generate is Streamlet.generate:
            problems.append("it has no inlets, so it is a source, but it defines no generate()")
        return problems

    def port_schema(self, port: str) -> Schema:
        """The schema of inlet or outlet ``port`` for this instance's config.

        The same as ``port.schema`` unless the port takes its schema from config
        (:class:`~streamlets.ports.FromConfig`), as the built-in streamlets do.
        """
        ports = {**type(self).__inlets__, **type(self).__outlets__}
        return ports[port].schema_for(self.config)

    def handler_for(self, inlet: str) -> Callable[[Any], Any]:
        """The bound method that processes records arriving on ``inlet`` (not a table's:
        the runner keeps a table up to date itself)."""
        cls = type(self)
        attr = cls.__handlers__.get(inlet)
        if attr:
            handler: Callable[[Any], Any] = getattr(self, attr)
            return handler
        if cls.process is Streamlet.process:
            for window in cls.__windows__.values():
                if window.inlet_name(cls.__inlets__) == inlet:
                    return window.handler()
        return self.process

    # -- what subclasses implement -------------------------------------------------------

    if TYPE_CHECKING:
        # To a type checker, process is any callable: a handler may take the record
        # alone or the record and its Meta, with the record types of the streamlet's own
        # ports (`def process(self, order: Order, meta: Meta) -> Invoice`), and mypy
        # --strict accepts both as overrides. At run time it is the method below.
        process: Callable[..., Any]
    else:

        def process(self, record: Any) -> Any:
            """Process one record; see the class docstring for what may be returned."""
            raise NotImplementedError(f"{type(self).__name__} does not implement process()")

    def generate(self) -> Iterable[Any] | AsyncIterable[Any]:
        """Produce the records of a source; see the class docstring."""
        raise NotImplementedError(f"{type(self).__name__} does not implement generate()")

    def setup(self) -> Any:
        """Called once before the first record (may be ``async``)."""
        return None

    def teardown(self) -> Any:
        """Called once after the last record, also on shutdown (may be ``async``)."""
        return None

    def flush(self) -> None:
        """Make what ``process()`` wrote so far durable (a plain method). A sink that
        buffers its writes overrides it: the Kafka runner calls it before it commits the
        offsets of the records processed so far, so a crash loses none of them (they are
        processed again after the restart: at-least-once); both runners call it once more
        before ``teardown()``."""

    def restart_problem(self) -> str | None:
        """Why this instance, as configured, would lose data if its process were restarted
        without being told (``None``: it would not). ``flow run-streamlet`` and
        ``flow deploy``, whose processes a platform restarts, refuse to run an instance that
        says why; ``flow run-local --kafka`` restarts its processes itself and tells them
        (:attr:`resuming`); the in-process runner does not restart."""
        return None

    def is_bounded(self) -> bool | None:
        """Whether this source, as configured, ends by itself: ``True`` (it reads a file),
        ``False`` (it serves requests until stopped), ``None`` when it cannot tell (the
        default). ``flow deploy`` suggests ``--job`` for a source that may end: a Deployment
        restarts a pod that exits, and the source would produce its records again."""
        return None

    def on_stop(self) -> Any:
        """A source's cue to stop taking input (may be ``async``): called once when the run
        is asked to stop (Ctrl-C, SIGTERM). A source that overrides it promises that
        ``generate()`` then yields what it has already accepted and ends; the runner keeps
        taking those records, for a bounded time, before it drains and tears down. A source
        that does not override it is simply no longer iterated (its generator is closed).
        """
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
