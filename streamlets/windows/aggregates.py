"""Aggregates: what a window computes from the records it takes.

Each aggregate is an **accumulator** with an initial value, a function that adds a record
to it, optionally one that merges two of them (session windows merge sessions), and the
result it gives when the window is emitted; the accumulator has an Avro schema, so that a
window's state is stored and restored like any state (DESIGN §8).

Built-in aggregates over a field of the input record (as in Kafka Streams' and Quix
Streams' windowed aggregations):

=========  ================================  ===============================================
aggregate  result                            result type
=========  ================================  ===============================================
``Count``  records (``Count("f")``: records  long
           whose ``f`` is not null)
``Sum``    sum of the field's values         the field's type (int promoted to long, float to
                                             double)
``Mean``   arithmetic mean                   double
``Min``    smallest value                    the field's type
``Max``    largest value                     the field's type
``First``  value of the first record taken   the field's type
``Last``   value of the last record taken    the field's type
=========  ================================  ===============================================

Sum, mean, min and max skip null values (as SQL does): over a nullable field their result
is null when every value was. First and last follow the order in which records arrived
(not their timestamps), which merging sessions keeps: each record carries its arrival
number in its partition.

A user-defined aggregate is an :class:`Aggregate` with a declared accumulator schema::

    class Spread(BaseModel):
        lo: float
        hi: float

    spread = Aggregate(
        Spread,
        initial=lambda: Spread(lo=math.inf, hi=-math.inf),
        add=lambda acc, r: Spread(lo=min(acc.lo, r.temperature), hi=max(acc.hi, r.temperature)),
        merge=lambda a, b: Spread(lo=min(a.lo, b.lo), hi=max(a.hi, b.hi)),  # session windows
    )

``add`` (and ``merge``) return the new accumulator; the one they are given is a fresh copy
(decoded from its stored form), so changing it in place is harmless.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from streamlets.errors import StreamletDefinitionError
from streamlets.schema import Schema
from streamlets.state import State
from streamlets.windows.fields import (
    base_type,
    describe_type,
    field_getter,
    field_names,
    field_type,
    is_nullable,
    is_number,
    is_ordered,
    nullable,
)

__all__ = [
    "BUILT_IN",
    "Aggregate",
    "BoundAggregate",
    "Count",
    "First",
    "Last",
    "Max",
    "Mean",
    "Min",
    "Sum",
    "WindowDefinitionError",
    "bind_aggregates",
]

A = TypeVar("A")
V = TypeVar("V")

#: A valid Avro name: what an aggregate's name becomes in a result record.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class WindowDefinitionError(StreamletDefinitionError):
    """A window or aggregate is declared in a way that cannot run (an aggregate over a
    field the input lacks, a mean over a string, a session window without a merge)."""


@dataclass(frozen=True, slots=True)
class BoundAggregate:
    """An aggregate made for one input schema: the functions a window runs, and the Avro
    types of its accumulator (``acc_avro``) and result (``result_avro``, ``None`` when a
    user-defined result has no declared type).

    ``fresh`` says whether accumulators are values nothing can change in place (the
    built-ins'); a window keeps the stored form of the others and hands each call a copy.
    """

    label: str
    acc_avro: Any
    result_avro: Any
    initial: Callable[[], Any]
    add: Callable[[Any, Any, int], Any]
    merge: Callable[[Any, Any], Any] | None
    result: Callable[[Any], Any]
    to_datum: Callable[[Any], Any]
    from_datum: Callable[[Any], Any]
    fresh: bool


def _identity(value: Any) -> Any:
    return value


class Aggregate(Generic[A, V]):
    """A user-defined aggregate: an accumulator of ``schema`` (anything a port or a
    :class:`~streamlets.State` takes: a pydantic model, ``int``, ``float``, an Avro schema),
    its ``initial`` value (a value, or a function that makes one), ``add(acc, record) ->
    acc`` (or a method marked ``@window.add``), optionally ``merge(a, b) -> acc`` (needed
    by session windows; ``a`` is the earlier session) and ``result(acc) -> value``
    (default: the accumulator itself).
    """

    kind = "aggregate"

    def __init__(
        self,
        schema: type[A] | Mapping[str, Any] | str | list[Any],
        *,
        initial: A | Callable[[], A],
        add: Callable[[A, Any], A] | None = None,
        merge: Callable[[A, A], A] | None = None,
        result: Callable[[A], V] | None = None,
    ) -> None:
        self.schema = schema
        self.initial = initial
        self.add = add
        self.merge = merge
        self.result = result

    def problem(self, input_schema: Schema) -> str | None:
        """Why this aggregate cannot run over records of ``input_schema`` (or ``None``)."""
        state: State[Any] = State(self.schema)
        return state.definition_problem()

    def bind(self, input_schema: Schema, label: str = "acc") -> BoundAggregate:
        """This aggregate made for records of ``input_schema`` (raises
        :class:`WindowDefinitionError` when it cannot run over them)."""
        problem = self.problem(input_schema)
        if problem is not None:
            raise WindowDefinitionError(f"aggregate '{label}': its accumulator: {problem}")
        if self.add is None:
            raise WindowDefinitionError(
                f"aggregate '{label}' has no add function; give Aggregate(..., add=...) or "
                "decorate a method with @window.add"
            )
        state: State[Any] = State(self.schema)
        schema = state.schema
        initial = self.initial
        make: Callable[[], Any] = initial if callable(initial) else (lambda: initial)
        user_add = self.add
        user_merge = self.merge
        result = self.result or _identity

        def add(acc: Any, record: Any, seq: int) -> Any:
            return user_add(acc, record)

        def to_datum(acc: Any) -> Any:
            return schema.to_datum(schema.validate(state.to_stored(acc)))

        def from_datum(datum: Any) -> Any:
            return state.from_stored(schema.from_datum(datum))

        return BoundAggregate(
            label=label,
            acc_avro=schema.avro,
            result_avro=schema.avro if self.result is None else None,
            initial=make,
            add=add,
            merge=user_merge,
            result=result,
            to_datum=to_datum,
            from_datum=from_datum,
            fresh=False,
        )

    def __repr__(self) -> str:
        return f"<Aggregate of {getattr(self.schema, '__name__', self.schema)!r}>"


class _FieldAggregate(Aggregate[Any, Any]):
    """A built-in aggregate over one field of the input record."""

    kind = ""
    #: What the field must hold, as a check and the words for the error.
    needs: tuple[Callable[[Any], bool], str] | None = None

    def __init__(self, field: str) -> None:
        if not isinstance(field, str) or not field:
            raise WindowDefinitionError(
                f"{type(self).__name__}(...) takes the name of a field of the input record; "
                f"got {field!r}"
            )
        self.field = field

    def problem(self, input_schema: Schema) -> str | None:
        """Why this aggregate cannot run over records of ``input_schema`` (or ``None``)."""
        names = field_names(input_schema)
        avro = field_type(input_schema, self.field)
        if avro is None:
            known = ", ".join(names) or "none"
            return (
                f"{self.kind} of '{self.field}': the input record has no field '{self.field}' "
                f"(its fields: {known})"
            )
        if self.needs is not None:
            check, words = self.needs
            if not check(avro):
                return f"{self.kind} needs {words}; '{self.field}' is {describe_type(avro)}"
        return None

    def _getter(self, input_schema: Schema) -> Callable[[Any], Any]:
        """Reads the field as Avro gives it (an enum as its symbol, a nested record as a
        dict), so that what is stored and emitted has the field's Avro type."""
        kind, logical = base_type(field_type(input_schema, self.field))
        plain = kind in ("int", "long", "float", "double", "string", "boolean", "bytes") and (
            logical is None or logical.startswith(("timestamp", "local-timestamp", "date", "time"))
        )
        get = field_getter(input_schema, self.field)
        if plain or input_schema.model is None:
            return get
        to_datum = input_schema.to_datum
        name = self.field

        def as_datum(record: Any) -> Any:
            if isinstance(record, Mapping):
                return record.get(name)
            return to_datum(record).get(name)

        return as_datum

    def bind(self, input_schema: Schema, label: str = "acc") -> BoundAggregate:
        """This aggregate made for records of ``input_schema``."""
        problem = self.problem(input_schema)
        if problem is not None:
            raise WindowDefinitionError(f"aggregate '{label}': {problem}")
        return self._bind(input_schema, field_type(input_schema, self.field), label)

    def _bind(self, input_schema: Schema, avro: Any, label: str) -> BoundAggregate:
        raise NotImplementedError  # pragma: no cover - every built-in overrides it

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.field!r})"


class Count(_FieldAggregate):
    """The number of records in the window; ``Count("f")``: of those whose ``f`` is not
    null. Result: long."""

    kind = "count"

    def __init__(self, field: str | None = None) -> None:
        if field is not None:
            super().__init__(field)
        self.field = field or ""

    def problem(self, input_schema: Schema) -> str | None:
        """Why this count cannot run over ``input_schema`` (only a missing field)."""
        return super().problem(input_schema) if self.field else None

    def bind(self, input_schema: Schema, label: str = "acc") -> BoundAggregate:
        """This count made for records of ``input_schema``."""
        problem = self.problem(input_schema)
        if problem is not None:
            raise WindowDefinitionError(f"aggregate '{label}': {problem}")
        if self.field:
            get = field_getter(input_schema, self.field)

            def add(acc: int, record: Any, seq: int) -> int:
                return acc if get(record) is None else acc + 1

        else:

            def add(acc: int, record: Any, seq: int) -> int:
                return acc + 1

        return BoundAggregate(
            label, "long", "long", int, add, _plus, _identity, _identity, _identity, True
        )

    def __repr__(self) -> str:
        return f"Count({self.field!r})" if self.field else "Count()"


def _plus(a: Any, b: Any) -> Any:
    return a + b


def _sum_type(avro: Any) -> Any:
    kind, _ = base_type(avro)
    wide = {"int": "long", "float": "double"}.get(kind, kind)
    return nullable(wide) if is_nullable(avro) else wide


class Sum(_FieldAggregate):
    """The sum of the field's values (nulls skipped). Result: the field's type, an int
    field's sum a long and a float field's a double."""

    kind = "sum"
    needs = (is_number, "a number field (int, long, float or double)")

    def _bind(self, input_schema: Schema, avro: Any, label: str) -> BoundAggregate:
        get = self._getter(input_schema)
        result_avro = _sum_type(avro)

        def add(acc: Any, record: Any, seq: int) -> Any:
            value = get(record)
            if value is None:
                return acc
            return value if acc is None else acc + value

        def merge(a: Any, b: Any) -> Any:
            if a is None:
                return b
            return a if b is None else a + b

        return BoundAggregate(
            label,
            nullable(result_avro),
            result_avro,
            _none,
            add,
            merge,
            _identity,
            _identity,
            _identity,
            True,
        )


def _none() -> None:
    return None


class Mean(_FieldAggregate):
    """The arithmetic mean of the field's values (nulls skipped). Result: double (null when
    every value was null)."""

    kind = "mean"
    needs = (is_number, "a number field (int, long, float or double)")

    def _bind(self, input_schema: Schema, avro: Any, label: str) -> BoundAggregate:
        get = self._getter(input_schema)

        def add(acc: tuple[float, int], record: Any, seq: int) -> tuple[float, int]:
            value = get(record)
            if value is None:
                return acc
            return (acc[0] + value, acc[1] + 1)

        def merge(a: tuple[float, int], b: tuple[float, int]) -> tuple[float, int]:
            return (a[0] + b[0], a[1] + b[1])

        def result(acc: tuple[float, int]) -> float | None:
            return float(acc[0]) / acc[1] if acc[1] else None

        return BoundAggregate(
            label,
            {
                "type": "record",
                "name": f"{label}_mean",
                "fields": [{"name": "sum", "type": "double"}, {"name": "count", "type": "long"}],
            },
            nullable("double") if is_nullable(avro) else "double",
            lambda: (0.0, 0),
            add,
            merge,
            result,
            lambda acc: {"sum": float(acc[0]), "count": acc[1]},
            lambda datum: (datum["sum"], datum["count"]),
            True,
        )


class _Extreme(_FieldAggregate):
    needs = (
        is_ordered,
        "a field whose values can be compared (a number, string, boolean, timestamp, date or time)",
    )
    smallest = True

    def _bind(self, input_schema: Schema, avro: Any, label: str) -> BoundAggregate:
        get = self._getter(input_schema)
        pick = min if self.smallest else max

        def add(acc: Any, record: Any, seq: int) -> Any:
            value = get(record)
            if value is None:
                return acc
            return value if acc is None else pick(acc, value)

        def merge(a: Any, b: Any) -> Any:
            if a is None:
                return b
            return a if b is None else pick(a, b)

        return BoundAggregate(
            label, nullable(avro), avro, _none, add, merge, _identity, _identity, _identity, True
        )


class Min(_Extreme):
    """The smallest value of the field (nulls skipped). Result: the field's type."""

    kind = "min"


class Max(_Extreme):
    """The largest value of the field (nulls skipped). Result: the field's type."""

    kind = "max"
    smallest = False


class _Positional(_FieldAggregate):
    last = False

    def _bind(self, input_schema: Schema, avro: Any, label: str) -> BoundAggregate:
        get = self._getter(input_schema)
        if self.last:

            def add(acc: tuple[int, Any], record: Any, seq: int) -> tuple[int, Any]:
                return (seq, get(record))

            def merge(a: tuple[int, Any], b: tuple[int, Any]) -> tuple[int, Any]:
                return a if a[0] > b[0] else b

        else:

            def add(acc: tuple[int, Any], record: Any, seq: int) -> tuple[int, Any]:
                return acc if acc[0] >= 0 else (seq, get(record))

            def merge(a: tuple[int, Any], b: tuple[int, Any]) -> tuple[int, Any]:
                if a[0] < 0:
                    return b
                return a if b[0] < 0 or a[0] < b[0] else b

        return BoundAggregate(
            label,
            {
                "type": "record",
                "name": f"{label}_{self.kind}",
                "fields": [
                    {"name": "seq", "type": "long"},
                    {"name": "value", "type": nullable(avro)},
                ],
            },
            avro,
            lambda: (-1, None),
            add,
            merge,
            lambda acc: acc[1],
            lambda acc: {"seq": acc[0], "value": acc[1]},
            lambda datum: (datum["seq"], datum["value"]),
            True,
        )


class First(_Positional):
    """The field's value in the first record the window took. Result: the field's type."""

    kind = "first"


class Last(_Positional):
    """The field's value in the last record the window took. Result: the field's type."""

    kind = "last"
    last = True


#: The built-in aggregates by the name a blueprint gives them (``{mean: temperature}``).
BUILT_IN: dict[str, type[_FieldAggregate]] = {
    "count": Count,
    "sum": Sum,
    "mean": Mean,
    "min": Min,
    "max": Max,
    "first": First,
    "last": Last,
}


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot name an aggregate in a result record (or ``None``)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        return (
            f"aggregate name {name!r} is not a field name (letters, digits and _, not "
            "starting with a digit)"
        )
    if name in ("key", "start", "end"):
        return f"aggregate name '{name}' is taken by the result's own field '{name}'"
    return None


def bind_aggregates(
    aggregates: Aggregate[Any, Any] | Mapping[str, Aggregate[Any, Any]], input_schema: Schema
) -> BoundAggregate:
    """One aggregate, or a mapping of named ones (the result is then a dict of their
    results, the accumulator a record of theirs), made for records of ``input_schema``."""
    if isinstance(aggregates, Aggregate):
        return aggregates.bind(input_schema, "acc")
    bound: list[tuple[str, BoundAggregate]] = []
    for name, aggregate in aggregates.items():
        problem = name_problem(name)
        if problem is not None:
            raise WindowDefinitionError(problem)
        if not isinstance(aggregate, Aggregate):
            raise WindowDefinitionError(
                f"aggregate '{name}' is {aggregate!r}; use Count(), Sum('field'), Mean('field'), "
                "Min, Max, First, Last or an Aggregate(...)"
            )
        bound.append((name, aggregate.bind(input_schema, name)))
    if not bound:
        raise WindowDefinitionError("a window needs at least one aggregate")
    return _combined(bound)


def _combined(parts: list[tuple[str, BoundAggregate]]) -> BoundAggregate:
    names = [name for name, _ in parts]
    fresh = all(b.fresh for _, b in parts)
    adds = [b.add for _, b in parts]
    initials = [b.initial for _, b in parts]
    merges = [b.merge for _, b in parts]
    results = [b.result for _, b in parts]
    to_data = [b.to_datum for _, b in parts]
    from_data = [b.from_datum for _, b in parts]

    def initial() -> tuple[Any, ...]:
        return tuple([make() for make in initials])

    add: Callable[[tuple[Any, ...], Any, int], tuple[Any, ...]]
    if len(parts) == 1:  # the hot path of one aggregate: no loop
        (only,) = adds

        def add_one(acc: tuple[Any, ...], record: Any, seq: int) -> tuple[Any, ...]:
            return (only(acc[0], record, seq),)

        add = add_one
    else:

        def add_all(acc: tuple[Any, ...], record: Any, seq: int) -> tuple[Any, ...]:
            return tuple([f(a, record, seq) for f, a in zip(adds, acc)])  # noqa: B905

        add = add_all

    merge: Callable[[Any, Any], Any] | None = None
    if all(m is not None for m in merges):

        def merge_all(a: tuple[Any, ...], b: tuple[Any, ...]) -> tuple[Any, ...]:
            return tuple(m(x, y) for m, x, y in zip(merges, a, b, strict=True))  # type: ignore[misc]

        merge = merge_all

    def result(acc: tuple[Any, ...]) -> dict[str, Any]:
        return {n: r(a) for n, r, a in zip(names, results, acc, strict=True)}

    def to_datum(acc: tuple[Any, ...]) -> dict[str, Any]:
        return {n: t(a) for n, t, a in zip(names, to_data, acc, strict=True)}

    def from_datum(datum: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(f(datum[n]) for n, f in zip(names, from_data, strict=True))

    results_avro = {n: b.result_avro for n, b in parts}
    return BoundAggregate(
        label="aggregates",
        acc_avro={
            "type": "record",
            "name": "accumulators",
            "fields": [{"name": n, "type": b.acc_avro} for n, b in parts],
        },
        result_avro=None if any(r is None for r in results_avro.values()) else results_avro,
        initial=initial,
        add=add,
        merge=merge,
        result=result,
        to_datum=to_datum,
        from_datum=from_datum,
        fresh=fresh,
    )
