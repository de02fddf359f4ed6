"""``WindowAggregate``: windowed aggregations configured from a blueprint alone (DESIGN §9).

::

    per-minute:
      class: streamlets.library:WindowAggregate
      config:
        input: sensors.streamlets:Reading     # the inlet's schema: module:Class or Avro
        key: sensor_id                        # key field (default: the record key)
        timestamp: at                         # event-time field (default: record timestamp)
        window: {type: tumbling, size: 60s, grace: 5s}   # hopping: size, step; session: gap
        aggregates: {avg: {mean: temperature}, hi: {max: temperature}, n: {count: {}}}
        emit: final                           # or: every
        late: skip                            # or: dead-letter

Its inlet is ``records`` and its outlet ``results``, whose records are ``WindowResult``:
``key`` (string), ``start`` and ``end`` (timestamp-millis), then one field per aggregate:
count a long, mean a double, the others the type of the input field they read (see
:mod:`streamlets.windows.aggregates`). An output's key is the window's key and its
timestamp the window's end.

Every mistake in this config is found by ``flow verify`` and reported at its line: an
unknown aggregate, a field the input does not have, a mean over a string, a size that
does not parse, a negative grace, an option the window type does not take.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ImportString, PrivateAttr, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from streamlets.errors import SchemaError
from streamlets.ports import FromConfig, Inlet, Outlet
from streamlets.schema import Schema
from streamlets.streamlet import Streamlet
from streamlets.windows.aggregates import BUILT_IN, Aggregate, name_problem
from streamlets.windows.durations import DurationError
from streamlets.windows.fields import (
    base_type,
    describe_type,
    field_names,
    field_type,
    without_redefinitions,
)
from streamlets.windows.specs import Hopping, Session, Sliding, Tumbling, WindowSpec
from streamlets.windows.window import Window

__all__ = ["WindowAggregate", "WindowAggregateConfig"]

#: The options of each window type (besides ``type``).
_OPTIONS: dict[str, tuple[str, ...]] = {
    "tumbling": ("size", "grace"),
    "hopping": ("size", "step", "grace"),
    "sliding": ("size", "grace"),
    "session": ("gap", "grace"),
}
_EXAMPLES = {
    "tumbling": "{type: tumbling, size: 60s, grace: 5s}",
    "hopping": "{type: hopping, size: 5m, step: 1m}",
    "sliding": "{type: sliding, size: 1m}",
    "session": "{type: session, gap: 30m}",
}
_KEY_TYPES = ("string", "bytes", "int", "long", "enum")


class _Problems:
    """Config mistakes found together, raised as one pydantic ValidationError whose errors
    carry their place in the config (``window.size``), so verify reports each at its line."""

    def __init__(self) -> None:
        self.errors: list[InitErrorDetails] = []

    def add(self, loc: tuple[str, ...], given: Any, message: str, hint: str = "") -> None:
        self.errors.append(
            InitErrorDetails(
                type=PydanticCustomError("window_config", message, {"hint": hint} if hint else {}),
                loc=loc,
                input=given,
            )
        )

    def raise_any(self) -> None:
        if self.errors:
            raise ValidationError.from_exception_data("WindowAggregateConfig", self.errors)


class WindowAggregateConfig(BaseModel):
    """Config of :class:`WindowAggregate` (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    input: ImportString[type[BaseModel]] | dict[str, Any] = Field(
        description="the input records' type: a pydantic model 'module:Class' or an Avro schema"
    )
    key: str | None = Field(None, description="the key field (default: the record's key)")
    timestamp: str | None = Field(
        None, description="the event-time field (default: the record's timestamp)"
    )
    window: dict[str, Any] = Field(
        description="the window: {type: tumbling|hopping|sliding|session, size, step, gap, grace}"
    )
    aggregates: dict[str, Any] = Field(
        description="name -> {count: {}} | {sum|mean|min|max|first|last: field}"
    )
    emit: Literal["final", "every"] = Field(
        "final", description="final: once per window when it closes; every: on each update"
    )
    late: Literal["skip", "dead-letter"] = Field(
        "skip", description="what happens to a record that comes after its windows closed"
    )

    _spec: WindowSpec | None = PrivateAttr(None)
    _aggregates: dict[str, Aggregate[Any, Any]] = PrivateAttr(default_factory=dict)
    _result: dict[str, Any] | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _check(self) -> WindowAggregateConfig:
        problems = _Problems()
        try:
            schema: Schema | None = Schema.of(self.input)
        except SchemaError as exc:
            problems.add(("input",), self.input, f"not a record schema: {exc}")
            schema = None
        self._spec = _window_spec(self.window, problems)
        self._aggregates = _aggregates(self.aggregates, schema, problems)
        if schema is not None:
            _check_field(schema, self.key, "key", _KEY_TYPES, problems)
            _check_field(schema, self.timestamp, "timestamp", ("long", "int"), problems)
        problems.raise_any()
        assert schema is not None
        self._result = _result_schema(self._aggregates, schema)
        return self

    @property
    def window_spec(self) -> WindowSpec:
        """The window type, made from ``window``."""
        assert self._spec is not None
        return self._spec

    @property
    def aggregate_set(self) -> dict[str, Aggregate[Any, Any]]:
        """The aggregates, made from ``aggregates``."""
        return self._aggregates

    @property
    def result_schema(self) -> dict[str, Any]:
        """The Avro schema of the ``WindowResult`` records."""
        assert self._result is not None
        return self._result


def _window_spec(data: Mapping[str, Any], problems: _Problems) -> WindowSpec | None:
    kind = data.get("type")
    if kind not in _OPTIONS:
        close = difflib.get_close_matches(str(kind), list(_OPTIONS), n=1)
        problems.add(
            ("window", "type"),
            kind,
            "the window type is tumbling, hopping, sliding or session"
            if kind is not None
            else "the window has no type",
            f"did you mean '{close[0]}'?" if close else f"e.g. window: {_EXAMPLES['tumbling']}",
        )
        return None
    allowed = _OPTIONS[kind]
    ok = True
    for option in data:
        if option != "type" and option not in allowed:
            ok = False
            problems.add(
                ("window", str(option)),
                data[option],
                f"a {kind} window takes {', '.join(allowed)}, not '{option}'",
                f"e.g. window: {_EXAMPLES[kind]}",
            )
    for option in allowed:
        if option != "grace" and option not in data:
            ok = False
            problems.add(
                ("window",),
                dict(data),
                f"a {kind} window needs '{option}'",
                f"e.g. window: {_EXAMPLES[kind]}",
            )
    if not ok:
        return None
    grace = data.get("grace", "0s")
    try:
        if kind == "tumbling":
            return Tumbling(data["size"], grace=grace)
        if kind == "hopping":
            return Hopping(data["size"], data["step"], grace=grace)
        if kind == "sliding":
            return Sliding(data["size"], grace=grace)
        return Session(data["gap"], grace=grace)
    except DurationError as exc:
        option = next((o for o in allowed if str(exc).startswith(o)), allowed[0])
        problems.add(("window", option), data.get(option), str(exc))
        return None


def _aggregates(
    data: Mapping[str, Any], schema: Schema | None, problems: _Problems
) -> dict[str, Aggregate[Any, Any]]:
    made: dict[str, Aggregate[Any, Any]] = {}
    if not data:
        problems.add(("aggregates",), data, "no aggregates", "e.g. aggregates: {n: {count: {}}}")
    for name, body in data.items():
        problem = name_problem(name)
        if problem is not None:
            problems.add(("aggregates", str(name)), name, problem)
            continue
        if not isinstance(body, Mapping) or len(body) != 1:
            problems.add(
                ("aggregates", name),
                body,
                "an aggregate is one of count, sum, mean, min, max, first, last with its field",
                f"e.g. {name}: {{mean: temperature}} or {name}: {{count: {{}}}}",
            )
            continue
        ((kind, argument),) = body.items()
        where = ("aggregates", name, str(kind))
        made_class = BUILT_IN.get(kind)
        if made_class is None:
            close = difflib.get_close_matches(str(kind), list(BUILT_IN), n=1)
            problems.add(
                where,
                kind,
                f"unknown aggregate '{kind}'; the aggregates are {', '.join(BUILT_IN)}",
                f"did you mean '{close[0]}'?" if close else "",
            )
            continue
        if argument in (None, {}) and kind == "count":
            aggregate: Aggregate[Any, Any] = made_class()  # type: ignore[call-arg]
        elif isinstance(argument, str) and argument:
            aggregate = made_class(argument)
        else:
            problems.add(
                where,
                argument,
                f"{kind} takes the name of a field of the input record",
                f"e.g. {name}: {{{kind}: temperature}}",
            )
            continue
        if schema is not None:
            problem = aggregate.problem(schema)
            if problem is not None:
                problems.add(where, argument, problem)
                continue
        made[name] = aggregate
    return made


def _check_field(
    schema: Schema, name: str | None, option: str, kinds: tuple[str, ...], problems: _Problems
) -> None:
    if name is None:
        return
    avro = field_type(schema, name)
    if avro is None:
        close = difflib.get_close_matches(name, field_names(schema), n=1)
        problems.add(
            (option,),
            name,
            f"the input record has no field '{name}' (its fields: "
            f"{', '.join(field_names(schema)) or 'none'})",
            f"did you mean '{close[0]}'?" if close else "",
        )
        return
    kind, _ = base_type(avro)
    if kind not in kinds:
        what = "a key" if option == "key" else "an event time (a datetime or epoch milliseconds)"
        problems.add((option,), name, f"'{name}' is {describe_type(avro)}, which is not {what}")


def _result_schema(aggregates: Mapping[str, Aggregate[Any, Any]], schema: Schema) -> dict[str, Any]:
    """The ``WindowResult`` record: key, start, end, then each aggregate's result."""
    millis = {"type": "long", "logicalType": "timestamp-millis"}
    fields: list[dict[str, Any]] = [
        {"name": "key", "type": "string"},
        {"name": "start", "type": millis},
        {"name": "end", "type": millis},
    ]
    defined: set[str] = set()
    for name, aggregate in aggregates.items():
        result = aggregate.bind(schema, name).result_avro
        fields.append({"name": name, "type": without_redefinitions(result, defined)})
    return {"type": "record", "name": "WindowResult", "fields": fields}


class WindowAggregate(Streamlet):
    """Windowed aggregations from config alone (see the module docstring): the records of
    ``records`` per key and window, the ``WindowResult`` of each window on ``results``."""

    Config = WindowAggregateConfig
    config: WindowAggregateConfig

    records = Inlet(FromConfig("input"), description="the records to aggregate")
    results = Outlet(FromConfig("result_schema"), description="one WindowResult per window")
    window = Window(
        FromConfig("window_spec"),
        FromConfig("aggregate_set"),
        key=FromConfig("key"),
        timestamp=FromConfig("timestamp"),
        emit=FromConfig("emit"),
        late=FromConfig("late"),
        description="the open windows",
    )
