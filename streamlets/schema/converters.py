"""Per-record converters between records and fastavro datums, built (or generated) per schema."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, cast

from pydantic import BaseModel

__all__ = [
    "Branch",
    "Conv",
    "FromDatumSource",
    "array_converters",
    "compile_to",
    "identity",
    "keeps_model_validate",
    "map_converters",
    "top_from",
    "top_to",
    "union_converters",
    "validator",
]

Conv = Callable[[Any], Any]
"""One conversion step: a value in, a value out."""


class Branch(Protocol):
    """What the converters of a union need to know of one of its branches."""

    @property
    def kind(self) -> str:
        """The Avro type of the branch (``array``, ``map``, a full name, ...)."""
        ...

    @property
    def branch(self) -> str:
        """fastavro's tuple-notation name of the branch."""
        ...

    @property
    def match(self) -> Callable[[Any], bool]:
        """Whether a Python value belongs to this branch."""
        ...

    @property
    def to(self) -> Conv | None:
        """Python value -> fastavro datum (None: as is)."""
        ...

    @property
    def frm(self) -> Conv | None:
        """fastavro datum -> value pydantic validates (None: as is)."""
        ...

    @property
    def final(self) -> Conv | None:
        """For a named type: datum -> the exact Python value."""
        ...

    @property
    def named(self) -> bool:
        """Whether the branch is a named type (record, enum)."""
        ...


def identity(v: Any) -> Any:
    """``v`` itself."""
    return v


def array_converters(
    item_to: Conv | None, item_frm: Conv | None, is_list: bool
) -> tuple[Conv | None, Conv | None]:
    """``(to, frm)`` of an array whose items convert with ``item_to`` / ``item_frm``."""
    to: Conv | None
    if item_to is not None:

        def to(v: Any) -> Any:
            return [item_to(x) for x in v]

    else:
        # fastavro writes any sized iterable, but only recognises lists in unions and
        # would read a tuple in a union as (branch name, value): always hand it a list.
        to = None if is_list else list
    frm: Conv | None = None
    if item_frm is not None:

        def frm(v: Any) -> Any:
            return [item_frm(x) for x in v]

    return to, frm


def map_converters(
    value_to: Conv | None, value_frm: Conv | None
) -> tuple[Conv | None, Conv | None]:
    """``(to, frm)`` of a map whose values convert with ``value_to`` / ``value_frm``."""
    to: Conv | None = None
    if value_to is not None:

        def to(v: Any) -> Any:
            return {k: value_to(x) for k, x in v.items()}

    frm: Conv | None = None
    if value_frm is not None:

        def frm(v: Any) -> Any:
            return {k: value_frm(x) for k, x in v.items()}

    return to, frm


def union_converters(
    branches: Sequence[Branch], names: list[str], named_mode: bool
) -> tuple[Conv | None, Conv | None]:
    """``(to, frm)`` of a union of ``branches`` (in dispatch order, null left out).

    ``names`` are the branch names in schema order (for error messages); ``named_mode``
    says that fastavro reads unions as ``(name, value)`` pairs (``return_named_type``).
    """
    single = branches[0] if len(branches) == 1 else None
    to: Conv | None
    if single is not None and not (single.named or single.kind in ("array", "map")):
        # fastavro tells null from one primitive cheaply and exactly.
        single_to = single.to
        to = None if single_to is None else (lambda v: None if v is None else single_to(v))
    else:
        # Tuple notation names the branch, so fastavro skips its trial-and-error
        # validation and cannot pick the wrong one (3 written to ["double", "long"]).
        table = [(f.match, f.branch, f.to) for f in branches]

        def to(v: Any) -> Any:
            if v is None:
                return None
            for match, branch, conv in table:
                if match(v):
                    return (branch, v if conv is None else conv(v))
            raise TypeError(f"{v!r} fits no branch of the union {names}")

    finals: dict[str, Conv] = {}
    for f in branches:
        if f.named:
            final = f.final or f.frm or identity
            finals[f.branch] = final
            finals[f.branch.rpartition(".")[2]] = final
    plain: dict[type, Conv | None] = {list: None, dict: None}
    for f in branches:
        if f.frm is not None and not f.named:
            plain[list if f.kind == "array" else dict] = f.frm
    frm: Conv | None = None
    if named_mode and finals:

        def frm(v: Any) -> Any:
            if v.__class__ is tuple:
                return finals[v[0]](v[1])
            conv = plain.get(v.__class__)
            return v if conv is None else conv(v)

    elif single is not None and single.frm is not None:
        single_frm = single.frm

        def frm(v: Any) -> Any:
            return None if v is None else single_frm(v)

    elif plain[list] is not None or plain[dict] is not None:

        def frm(v: Any) -> Any:
            conv = plain.get(v.__class__)
            return v if conv is None else conv(v)

    return to, frm


def _compile(name: str, source: str, env: dict[str, Any], model: type) -> Conv:
    namespace = dict(env)
    code = compile(source, f"<streamlets.schema {model.__qualname__}.{name}>", "exec")
    exec(code, namespace)
    return cast(Conv, namespace[name])


def compile_to(model: type[BaseModel], parts: list[tuple[str, str, Conv | None]]) -> Conv:
    """model instance -> dict for fastavro, with a field's converter only where needed.

    ``parts`` holds ``(attribute, Avro field name, converter or None)`` per field.
    """
    if all(conv is None and attr == name for attr, name, conv in parts):
        return operator.attrgetter("__dict__")
    env: dict[str, Any] = {}
    items = []
    for i, (attr, name, conv) in enumerate(parts):
        value = f"d[{attr!r}]"
        if conv is not None:
            env[f"c{i}"] = conv
            value = f"c{i}({value})"
        items.append(f"{name!r}: {value}")
    source = "def to(r):\n    d = r.__dict__\n    return {" + ", ".join(items) + "}\n"
    return _compile("to", source, env, model)


def _is_cached(v: Any) -> bool:
    """Whether CPython may hand out this very object for equal decoded data."""
    if isinstance(v, bool):
        return True
    if isinstance(v, int):
        return -5 <= v <= 256
    if isinstance(v, str):
        return len(v) <= 1
    return False


class FromDatumSource:
    """The generated ``frm(d)`` of a record: a record datum fastavro read -> what pydantic
    validates, one step per field that needs one (most fields need none)."""

    __slots__ = ("_env", "_lines")

    def __init__(self) -> None:
        self._env: dict[str, Any] = {}
        self._lines: list[str] = []

    def add_field(
        self,
        i: int,
        avro_name: str,
        *,
        raw: Any,
        has_raw: bool,
        factory: bool,
        fix: bool,
        frm: Conv | None,
        raw_type: type | None,
        validation_key: str,
    ) -> None:
        """The steps of field number ``i``.

        ``raw`` is its Avro default (when ``has_raw``), ``factory`` whether that came from
        a ``default_factory``; ``fix``, ``frm`` and ``raw_type`` come from its derived type;
        ``validation_key`` is the key under which pydantic validates it.
        """
        env, lines = self._env, self._lines
        key = repr(avro_name)
        # Old data read with this schema carries the raw Avro default (fastavro does
        # not decode defaults); drop it so that pydantic applies the model's default.
        if has_raw and (fix or frm is not None or factory):
            if raw_type is not None and type(raw) is raw_type:
                # Real data of this field never has the raw default's type.
                env[f"t{i}"] = raw_type
                lines.append(f"    if d.get({key}).__class__ is t{i}: del d[{key}]")
            elif isinstance(raw, dict | list) or (
                factory and isinstance(raw, float | str | int) and not _is_cached(raw)
            ):
                env[f"r{i}"] = raw
                lines.append(f"    if d.get({key}) is r{i}: del d[{key}]")
        if frm is not None:
            env[f"c{i}"] = frm
            lines.append(f"    if {key} in d: d[{key}] = c{i}(d[{key}])")
        if validation_key != avro_name:
            lines.append(f"    if {key} in d: d[{validation_key!r}] = d.pop({key})")

    def compile(self, model: type) -> Conv | None:
        """The compiled ``frm``, or ``None`` when no field needs a step."""
        if not self._lines:
            return None
        source = "def frm(d):\n" + "\n".join(self._lines) + "\n    return d\n"
        return _compile("frm", source, self._env, model)


def keeps_model_validate(model: type[BaseModel]) -> bool:
    """Whether ``model`` validates with pydantic's own ``model_validate`` (no override), so
    that its pydantic-core validator may be called directly."""
    return getattr(model.model_validate, "__func__", None) is BaseModel.model_validate.__func__  # type: ignore[attr-defined]


def validator(model: type[BaseModel]) -> Conv:
    """model_validate in lax mode, straight to pydantic-core unless the class overrides it."""
    if keeps_model_validate(model):
        validate_python = model.__pydantic_validator__.validate_python

        def validate(d: Any) -> Any:
            return validate_python(d, strict=False)

        return validate

    def validate_overridden(d: Any) -> Any:
        return model.model_validate(d, strict=False)

    return validate_overridden


def _a(name: str) -> str:
    """``name`` with its indefinite article: ``a Reading``, ``an Order``."""
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def top_to(model: type[BaseModel], to: Conv, validate: Conv) -> Conv:
    """A port's record -> datum: ``to`` for an instance of ``model``, validated dicts too."""

    def fallback(r: Any) -> Any:
        if isinstance(r, model):
            return to(r)
        if isinstance(r, Mapping):
            return to(validate(r))
        if isinstance(r, BaseModel) and type(r).__qualname__ == model.__qualname__:
            # The same model imported from another module (a test's copy, say): by fields.
            return to(validate(r.model_dump(by_alias=True)))
        raise TypeError(
            f"expected {_a(model.__name__)} (or a dict of its fields), got {_a(type(r).__name__)}"
        )

    def to_datum(r: Any) -> Any:
        if r.__class__ is model:
            return to(r)
        return fallback(r)

    return to_datum


def top_from(frm: Conv | None, validate: Conv) -> Conv:
    """A port's datum -> validated record: ``frm`` (when needed), then ``validate``."""
    if frm is None:
        return validate

    def from_datum(d: Any) -> Any:
        return validate(frm(d))

    return from_datum
