"""Port schemas: pydantic models <-> Avro, and :class:`Schema`, the schema of a port.

A port's schema is a pydantic model class (records are model instances) or an Avro
schema given as JSON-able data (records are then what fastavro reads and writes: dicts
for records, plain values otherwise). :meth:`Schema.of` turns either into a
:class:`Schema` holding the full Avro schema, the fastavro-parsed form and two converters
compiled once per schema: :meth:`Schema.to_datum` (record -> value fastavro writes) and
:meth:`Schema.from_datum` (value fastavro read -> validated record).

How a pydantic model becomes Avro (:func:`avro_schema`)
-------------------------------------------------------

Records
    A model is a ``record`` named after its class (sanitised to a valid Avro name: the
    pydantic generic ``Box[int]`` becomes ``Box_int``). ``__avro_namespace__ = "a.b"`` on
    the class sets its namespace; a nested model or Enum without one takes the namespace
    of the top-level model of the schema. ``__avro_aliases__ = ("OldName",)`` lists the
    names the record had before: this is how a renamed model declares that it reads data
    written under its old name (Avro resolution matches records by name or alias). The
    class's own docstring becomes the record's ``doc``. Nested models are defined once and
    referenced by full name afterwards, so recursive models work.

Fields
    The Avro field name is the field's (serialisation) alias when it has one, else the
    attribute name. ``Field(description=...)`` becomes the field's ``doc`` and
    ``Field(json_schema_extra={"avro_aliases": ["old_name"]})`` its Avro aliases (for a
    renamed field). A field with a default -- or a ``default_factory`` without arguments,
    called once -- gets the Avro default, so a reader can read data written before the
    field existed; required fields get none. Reading such old data gives the model's own
    default (a ``default_factory`` runs again).

Types
    ``str`` string, ``int`` long, ``float`` double, ``bool`` boolean, ``bytes`` bytes,
    ``None`` null; ``list[X]``, ``tuple[X, ...]``, ``set[X]``, ``frozenset[X]`` array;
    ``dict[str, X]`` map (other key types have no Avro form); ``X | None`` the union
    ``["null", X]`` when the default is ``None``, else ``[X, "null"]`` (Avro requires a
    union's default to match its first branch); other unions are flattened into one Avro
    union, with the branch that matches the default first. A union may hold each Avro type
    once (two arrays, two maps, ``int | datetime`` -- both ``long`` -- are rejected; wrap
    the alternatives in models instead).

    An ``Enum`` becomes an Avro ``enum`` named after the class. Its symbols are the
    members' **values** when every value is a string that is a valid Avro name (the usual
    ``class Color(str, Enum): red = "red"``), so the Avro symbols match the JSON form;
    otherwise (``IntEnum``, values like ``"dark-red"``) the symbols are the member
    **names**. Changing one value to a non-name therefore switches the whole enum to names,
    which old readers will not understand. ``Literal["a", "b"]`` becomes an enum named
    ``<Record>_<field>``; a ``Literal`` of strings that are not Avro names is a string,
    of ints a long, of bools a boolean.

    ``datetime`` is ``long``/``timestamp-micros``: a naive datetime is taken as UTC when
    written and every datetime is read back timezone-aware in UTC (the same instant).
    ``date`` is ``int``/``date``; ``time`` is ``long``/``time-micros`` (its tzinfo is
    dropped); ``UUID`` is ``string``/``uuid``; ``Decimal`` is ``bytes``/``decimal`` whose
    precision and scale come from ``Field(max_digits=..., decimal_places=...)``, which are
    therefore required. ``Any``, ``object`` and other classes have no Avro form and raise
    :class:`~streamlets.errors.SchemaError` naming the model and field.

Reading
    :meth:`Schema.from_datum` validates with ``model_validate`` in lax mode (even for
    strict models), because Avro's forms of enums, tuples and sets are not the Python
    ones; the data was already checked against the schema when it was written.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import enum
import inspect
import json
import operator
import re
import sys
import types
import typing
import uuid
from collections import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, cast, get_args, get_origin

import fastavro
from fastavro.validation import ValidationError as AvroValidationError
from fastavro.validation import validate as avro_validate
from pydantic import BaseModel, RootModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from streamlets.errors import SchemaError

__all__ = [
    "AvroSchema",
    "Schema",
    "avro_schema",
    "describe_validation_error",
]

AvroSchema = str | list[Any] | dict[str, Any]
"""A JSON-able Avro schema: a type name, a union (list) or a complex type (dict)."""

Conv = Callable[[Any], Any]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_NOT_NAME = re.compile(r"[^A-Za-z0-9_]+")
_NAMED_KINDS = frozenset({"record", "enum", "fixed", "error"})
_UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)
_EPOCH_DATE = dt.date(1970, 1, 1)
_MICROSECOND = dt.timedelta(microseconds=1)
_MISSING: Any = object()
_SUPPORTED = (
    "str, int, float, bool, bytes, None, datetime, date, time, UUID, Decimal, an Enum, "
    "a Literal, a pydantic model, list/tuple/set[X], dict[str, X] or a union of these"
)


# --------------------------------------------------------------------------- helpers


def _sanitise(name: str) -> str:
    """A valid Avro name for a Python class name (``Box[int]`` -> ``Box_int``)."""
    clean = _NOT_NAME.sub("_", name).strip("_") or "_"
    return "_" + clean if clean[0].isdigit() else clean


def _is_fullname(name: str) -> bool:
    return all(_NAME.match(part) for part in name.split("."))


def _fullname(name: str, namespace: str | None) -> str:
    return f"{namespace}.{name}" if namespace else name


def _type_repr(tp: Any) -> str:
    if isinstance(tp, type):
        return (
            tp.__qualname__ if tp.__module__ == "builtins" else f"{tp.__module__}.{tp.__qualname__}"
        )
    return repr(tp).replace("typing.", "")


def _own_doc(cls: type) -> str | None:
    doc = cls.__dict__.get("__doc__")
    if doc is None:
        # A parametrised generic model (Box[int]) is a subclass without a docstring.
        origin = getattr(cls, "__pydantic_generic_metadata__", {}).get("origin")
        if origin is not None:
            doc = origin.__dict__.get("__doc__")
    if not isinstance(doc, str) or not doc.strip():
        return None
    return inspect.cleandoc(doc)


def _class_names(cls: type, attr: str, where: str) -> list[str]:
    value = cls.__dict__.get(attr, ())
    if isinstance(value, str):
        value = (value,)
    names = list(value)
    for name in names:
        if not isinstance(name, str) or not _is_fullname(name):
            raise SchemaError(f"{where}: {attr} entry {name!r} is not a valid Avro name")
    return names


def _namespace_of(cls: type, default: str | None, where: str) -> str | None:
    ns = getattr(cls, "__avro_namespace__", None)
    if ns is None or ns == "":
        return default
    if not isinstance(ns, str) or not _is_fullname(ns):
        raise SchemaError(f"{where}: __avro_namespace__ {ns!r} is not a valid Avro namespace")
    return ns


def describe_validation_error(exc: ValidationError, limit: int = 3) -> str:
    """``field 'a.b': message; ...`` for a pydantic ValidationError (at most ``limit`` errors)."""
    parts = []
    errors = exc.errors(include_url=False)
    for err in errors[:limit]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"field '{loc}': {err['msg']}" if loc else str(err["msg"]))
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more")
    return "; ".join(parts)


def _describe_avro_error(exc: AvroValidationError, root: str) -> str:
    parts = []
    for err in exc.errors:
        path = str(err.field or "")
        if path == root:
            path = ""
        elif path.startswith(root + "."):
            path = path[len(root) + 1 :]
        where = f"field '{path}'" if path else "value"
        parts.append(
            f"{where} is {err.datum!r} ({type(err.datum).__name__}), expected "
            f"{json.dumps(err.schema) if not isinstance(err.schema, str) else err.schema}"
        )
    return "; ".join(parts) or str(exc)


# ----------------------------------------------------------------- value predicates


def _is_none(v: Any) -> bool:
    return v is None


def _is_bool(v: Any) -> bool:
    return v is True or v is False


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_float(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_bytes(v: Any) -> bool:
    return isinstance(v, bytes | bytearray)


def _is_datetime(v: Any) -> bool:
    return isinstance(v, dt.datetime)


def _is_date(v: Any) -> bool:
    return isinstance(v, dt.date) and not isinstance(v, dt.datetime)


def _is_time(v: Any) -> bool:
    return isinstance(v, dt.time)


def _is_uuid(v: Any) -> bool:
    return isinstance(v, uuid.UUID)


def _is_decimal(v: Any) -> bool:
    return isinstance(v, decimal.Decimal)


def _is_seq(v: Any) -> bool:
    return isinstance(v, list | tuple | set | frozenset)


def _is_map(v: Any) -> bool:
    return isinstance(v, Mapping)


# ------------------------------------------------- default encoders (Avro JSON form)


def _expect(ok: bool, v: Any, what: str) -> None:
    if not ok:
        raise TypeError(f"{v!r} is not {what}")


def _enc_null(v: Any) -> Any:
    _expect(v is None, v, "None")
    return None


def _enc_bool(v: Any) -> Any:
    _expect(_is_bool(v), v, "a bool")
    return bool(v)


def _enc_long(v: Any) -> Any:
    _expect(_is_int(v), v, "an int")
    return int(v)


def _enc_double(v: Any) -> Any:
    _expect(_is_float(v), v, "a float")
    return float(v)


def _enc_str(v: Any) -> Any:
    _expect(isinstance(v, str), v, "a str")
    return str.__str__(v)


def _enc_bytes(v: Any) -> Any:
    _expect(_is_bytes(v), v, "bytes")
    # The Avro spec encodes bytes defaults as a string of code points 0-255.
    return bytes(v).decode("latin-1")


def _enc_datetime(v: Any) -> Any:
    _expect(_is_datetime(v), v, "a datetime")
    aware = v.replace(tzinfo=_UTC) if v.tzinfo is None else v
    return (aware - _EPOCH) // _MICROSECOND


def _enc_date(v: Any) -> Any:
    _expect(_is_date(v), v, "a date")
    return (v - _EPOCH_DATE).days


def _enc_time(v: Any) -> Any:
    _expect(_is_time(v), v, "a time")
    return ((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000 + v.microsecond


def _enc_uuid(v: Any) -> Any:
    _expect(_is_uuid(v), v, "a UUID")
    return str(v)


def _decimal_encoder(scale: int) -> Conv:
    def encode(v: Any) -> Any:
        _expect(_is_decimal(v), v, "a Decimal")
        sign, digits, exponent = v.as_tuple()
        if not isinstance(exponent, int):
            raise ValueError(f"{v} has no Avro decimal form")
        if exponent + scale < 0:
            raise ValueError(f"{v} has more than {scale} decimal places")
        unscaled = int("".join(map(str, digits)) or "0") * 10 ** (exponent + scale)
        unscaled = -unscaled if sign else unscaled
        size = unscaled.bit_length() // 8 + 1
        return unscaled.to_bytes(size, "big", signed=True).decode("latin-1")

    return encode


# ---------------------------------------------------------------------- derivation


@dataclass(slots=True, eq=False)
class _Named:
    """A named Avro type; emitted as its definition once, then as its full name."""

    kind: str
    name: str
    namespace: str | None
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def fullname(self) -> str:
        return _fullname(self.name, self.namespace)


@dataclass(slots=True, eq=False)
class _Form:
    """What one Python type becomes: its Avro form and its converters."""

    avro: Any
    kind: str  # two union branches clash when their kinds are equal
    branch: str  # fastavro's tuple-notation name of this type as a union branch
    match: Callable[[Any], bool]  # does a Python value belong to this type (union dispatch)
    priority: int  # union dispatch order: the more specific types first
    encode: Conv  # Python value -> Avro JSON (for defaults)
    to: Conv | None = None  # Python value -> fastavro datum (None: as is)
    frm: Conv | None = None  # fastavro datum -> value pydantic validates (None: as is)
    final: Conv | None = None  # named types in unions: datum -> the exact Python value
    named: bool = False
    fix: bool = False  # the raw Avro default differs from what fastavro decodes
    raw_type: type | None = None  # the Python type of such a raw default (int, str)


def _primitive(
    avro: Any,
    kind: str,
    match: Callable[[Any], bool],
    priority: int,
    encode: Conv,
    raw_type: type | None = None,
) -> _Form:
    return _Form(
        avro,
        kind,
        kind,
        match,
        priority,
        encode,
        fix=raw_type is not None,
        raw_type=raw_type,
    )


def _null() -> _Form:
    return _primitive("null", "null", _is_none, 0, _enc_null)


@dataclass(slots=True, eq=False)
class _ModelInfo:
    named: _Named
    to: Conv | None = None
    frm: Conv | None = None
    validate: Conv | None = None
    encode: Conv | None = None
    fix: bool = True
    done: bool = False


@dataclass(slots=True, eq=False)
class _LiteralGroup:
    values: tuple[Any, ...]


class _Deriver:
    """Derives the Avro schema and converters of one top-level model."""

    def __init__(self, root: type[BaseModel], named_unions: bool) -> None:
        self.root = root
        self.root_ns = _namespace_of(root, None, f"model {root.__name__}")
        # When a union holds named types, the codec asks fastavro for (name, value)
        # pairs, and every union with a named branch must unpack them.
        self.named_unions = named_unions
        self.saw_named_union = False
        self.defined: dict[str, Any] = {}
        self.models: dict[type[BaseModel], _ModelInfo] = {}
        self.enums: dict[type[enum.Enum], _Form] = {}
        self.literals: dict[tuple[str, tuple[str, ...]], _Named] = {}

    # -- names

    def claim(self, fullname: str, owner: Any, what: str) -> None:
        other = self.defined.get(fullname)
        if other is not None and other is not owner:
            raise SchemaError(
                f"{what}: two different types are named '{fullname}' in the Avro schema of "
                f"{self.root.__name__}; rename one or give it an __avro_namespace__"
            )
        self.defined[fullname] = owner

    # -- models

    def model_type(self, model: type[BaseModel], where: str) -> _Form:
        info = self.models.get(model)
        if info is None:
            info = self.define_model(model, where)
        return self.model_form(model, info)

    def model_form(self, model: type[BaseModel], info: _ModelInfo) -> _Form:
        if info.done:
            to = info.to
            frm = info.frm
            validate = info.validate
            encode = info.encode
        else:
            # A recursive reference: bind to the converters once they exist.
            def to(v: Any) -> Any:
                return cast(Conv, info.to)(v)

            def frm(v: Any) -> Any:
                return info.frm(v) if info.frm is not None else v

            def validate(v: Any) -> Any:
                return cast(Conv, info.validate)(v)

            def encode(v: Any) -> Any:
                return cast(Conv, info.encode)(v)

        assert to is not None and validate is not None and encode is not None
        rec_frm = frm

        def final(v: Any) -> Any:
            return validate(v if rec_frm is None else rec_frm(v))

        return _Form(
            info.named,
            info.named.fullname,
            info.named.fullname,
            lambda v: isinstance(v, model),
            1,
            encode,
            to=to,
            frm=frm,
            final=final,
            named=True,
            fix=info.fix,
        )

    def define_model(self, model: type[BaseModel], where: str) -> _ModelInfo:
        label = f"model {model.__name__}"
        if issubclass(model, RootModel):
            raise SchemaError(
                f"{where}: {model.__name__} is a RootModel, which has no Avro record form; "
                "use a BaseModel with named fields"
            )
        if not model.__pydantic_complete__:
            try:
                model.model_rebuild()
            except Exception as exc:
                raise SchemaError(f"{label} is not fully defined: {exc}") from exc
        name = _sanitise(model.__name__)
        namespace = _namespace_of(model, self.root_ns, label)
        named = _Named("record", name, namespace)
        self.claim(named.fullname, model, label)
        info = _ModelInfo(named)
        self.models[model] = info

        doc = _own_doc(model)
        if doc:
            named.body["doc"] = doc
        aliases = _class_names(model, "__avro_aliases__", label)
        if aliases:
            named.body["aliases"] = aliases
        fields: list[dict[str, Any]] = []
        named.body["fields"] = fields

        to_parts: list[tuple[str, str, Conv | None]] = []  # (attr, avro name, to)
        frm_lines: list[str] = []
        env: dict[str, Any] = {}
        encoders: list[tuple[str, str, Conv]] = []
        any_fix = False
        seen_names: set[str] = set()

        for i, (attr, info_f) in enumerate(model.model_fields.items()):
            fwhere = f"field '{attr}' of {model.__name__}"
            avro_name = sys.intern(info_f.serialization_alias or info_f.alias or attr)
            if not _NAME.match(avro_name):
                raise SchemaError(
                    f"{fwhere}: '{avro_name}' is not a valid Avro field name "
                    "(letters, digits and _, not starting with a digit)"
                )
            if avro_name in seen_names:
                raise SchemaError(f"{fwhere}: two fields are named '{avro_name}' in Avro")
            seen_names.add(avro_name)

            default, factory = _field_default(info_f)
            form = self.derive(
                info_f.annotation,
                list(info_f.metadata),
                fwhere,
                default,
                f"{name}_{avro_name}",
                namespace,
            )
            entry: dict[str, Any] = {"name": avro_name, "type": form.avro}
            if info_f.description:
                entry["doc"] = info_f.description
            extra = info_f.json_schema_extra
            if isinstance(extra, dict) and extra.get("avro_aliases"):
                field_aliases = extra["avro_aliases"]
                if isinstance(field_aliases, str):
                    field_aliases = [field_aliases]
                if not isinstance(field_aliases, list | tuple) or not all(
                    isinstance(a, str) and _NAME.match(a) for a in field_aliases
                ):
                    raise SchemaError(
                        f"{fwhere}: avro_aliases must be a list of valid Avro field names, "
                        f"not {field_aliases!r}"
                    )
                entry["aliases"] = list(field_aliases)
            raw: Any = _MISSING
            if default is not _MISSING:
                try:
                    raw = form.encode(default)
                except (TypeError, ValueError) as exc:
                    raise SchemaError(
                        f"{fwhere}: the default {default!r} has no Avro form ({exc})"
                    ) from exc
                if factory and isinstance(raw, str) and len(raw) > 1:
                    # A fresh object, so that reading it back can be told from real data.
                    raw = "".join([raw[:1], raw[1:]])
                entry["default"] = raw
            fields.append(entry)

            to_parts.append((attr, avro_name, form.to))
            encoders.append((attr, avro_name, form.encode))
            any_fix = any_fix or form.fix

            key = repr(avro_name)
            # Old data read with this schema carries the raw Avro default (fastavro does
            # not decode defaults); drop it so that pydantic applies the model's default.
            if raw is not _MISSING and (form.fix or form.frm is not None or factory):
                if form.raw_type is not None and type(raw) is form.raw_type:
                    # Real data of this field never has the raw default's type.
                    env[f"t{i}"] = form.raw_type
                    frm_lines.append(f"    if d.get({key}).__class__ is t{i}: del d[{key}]")
                elif isinstance(raw, dict | list) or (
                    factory and isinstance(raw, float | str | int) and not _is_cached(raw)
                ):
                    env[f"r{i}"] = raw
                    frm_lines.append(f"    if d.get({key}) is r{i}: del d[{key}]")
            if form.frm is not None:
                env[f"c{i}"] = form.frm
                frm_lines.append(f"    if {key} in d: d[{key}] = c{i}(d[{key}])")
            vkey = _validation_key(info_f, attr, avro_name, fwhere)
            if vkey != avro_name:
                frm_lines.append(f"    if {key} in d: d[{vkey!r}] = d.pop({key})")

        info.to = _compile_to(model, to_parts)
        if frm_lines:
            info.frm = _compile(
                "frm", "def frm(d):\n" + "\n".join(frm_lines) + "\n    return d\n", env, model
            )
        info.fix = any_fix
        info.validate = _validator(model)
        info.encode = _record_encoder(model, encoders, info.validate)
        info.done = True
        return info

    # -- types

    def derive(
        self,
        tp: Any,
        meta: list[Any],
        where: str,
        default: Any,
        literal_name: str,
        namespace: str | None,
    ) -> _Form:
        tp, meta = _unwrap(tp, meta)
        if tp is None or tp is type(None):
            return _null()
        origin = get_origin(tp)
        if origin is Union or origin is types.UnionType or origin is Literal:
            return self.union_type(tp, meta, where, default, literal_name, namespace)
        if isinstance(tp, _LiteralGroup):
            return self.literal_type(tp.values, where, literal_name, namespace)
        if tp is Any or tp is object:
            raise SchemaError(
                f"{where}: type {_type_repr(tp)} has no Avro form; use a concrete type: "
                f"{_SUPPORTED}"
            )
        if isinstance(tp, typing.TypeVar):
            raise SchemaError(
                f"{where}: type variable {tp} has no Avro form; parametrise the generic "
                "model (Box[int]) before using it as a schema"
            )
        if origin is not None:
            return self.generic_type(tp, origin, where, literal_name, namespace)
        if isinstance(tp, type):
            return self.class_type(tp, meta, where)
        raise SchemaError(f"{where}: type {_type_repr(tp)} has no Avro form; use {_SUPPORTED}")

    def class_type(self, tp: type, meta: list[Any], where: str) -> _Form:
        if issubclass(tp, BaseModel):
            return self.model_type(tp, where)
        if issubclass(tp, enum.Enum):
            return self.enum_type(tp, where)
        if tp is bool:
            return _primitive("boolean", "boolean", _is_bool, 4, _enc_bool)
        if tp is int:
            return _primitive("long", "long", _is_int, 10, _enc_long)
        if tp is float:
            return _primitive("double", "double", _is_float, 11, _enc_double)
        if tp is str:
            return _primitive("string", "string", _is_str, 13, _enc_str)
        if tp is bytes:
            return _primitive("bytes", "bytes", _is_bytes, 12, _enc_bytes, str)
        timelike = _TIME_TYPES.get(tp)
        if timelike is None and tp.__module__ == "pydantic.types":
            timelike = _PYDANTIC_TIME_TYPES.get(tp.__name__)
        if timelike is not None:
            return timelike()
        if tp is uuid.UUID:
            return _Form(
                {"type": "string", "logicalType": "uuid"}, "string", "string", _is_uuid, 8,
                _enc_uuid,
            )  # fmt: skip
        if tp is decimal.Decimal:
            return _decimal_form(meta, where)
        raise SchemaError(
            f"{where}: type {_type_repr(tp)} has no Avro form; use {_SUPPORTED}"
            + (" (or give the class a pydantic model form)" if tp.__module__ != "builtins" else "")
        )

    def generic_type(
        self, tp: Any, origin: Any, where: str, literal_name: str, namespace: str | None
    ) -> _Form:
        args = get_args(tp)
        if origin in _ARRAY_ORIGINS:
            if origin is tuple:
                if len(args) != 2 or args[1] is not Ellipsis:
                    raise SchemaError(
                        f"{where}: type {_type_repr(tp)} has no Avro form; Avro arrays hold "
                        "one type: use tuple[X, ...], list[X] or a model"
                    )
                args = args[:1]
            if len(args) != 1:
                raise SchemaError(f"{where}: give {_type_repr(tp)} its item type, e.g. list[str]")
            item = self.derive(args[0], [], where, _MISSING, literal_name, namespace)
            return _array(item, origin is list)
        if origin in _MAP_ORIGINS:
            if len(args) != 2:
                raise SchemaError(f"{where}: give {_type_repr(tp)} its types, e.g. dict[str, int]")
            key = _unwrap(args[0], [])[0]
            if key is not str:
                raise SchemaError(
                    f"{where}: type {_type_repr(tp)} has no Avro form; Avro maps have string "
                    "keys: use dict[str, X] (or a list of models)"
                )
            value = self.derive(args[1], [], where, _MISSING, literal_name, namespace)
            return _map(value)
        raise SchemaError(f"{where}: type {_type_repr(tp)} has no Avro form; use {_SUPPORTED}")

    def enum_type(self, cls: type[enum.Enum], where: str) -> _Form:
        known = self.enums.get(cls)
        if known is not None:
            return known
        label = f"enum {cls.__name__}"
        members = list(cls)
        if not members:
            raise SchemaError(f"{where}: {label} has no members")
        values = [m.value for m in members]
        by_value = all(isinstance(v, str) and _NAME.match(v) for v in values) and len(
            set(values)
        ) == len(values)
        symbols = [cast(str, m.value) if by_value else m.name for m in members]
        bad = [s for s in symbols if not _NAME.match(s)]
        if bad:
            raise SchemaError(f"{where}: {label} has names that are not Avro names: {bad}")
        named = _Named("enum", _sanitise(cls.__name__), _namespace_of(cls, self.root_ns, label))
        self.claim(named.fullname, cls, label)
        doc = _own_doc(cls)
        if doc:
            named.body["doc"] = doc
        aliases = _class_names(cls, "__avro_aliases__", label)
        if aliases:
            named.body["aliases"] = aliases
        named.body["symbols"] = symbols

        to_symbol: dict[Any, str] = {}
        for member, symbol in zip(members, symbols, strict=True):
            to_symbol[member] = symbol
            # Models with use_enum_values hold the values, not the members.
            with contextlib.suppress(TypeError):
                to_symbol.setdefault(member.value, symbol)
        to_member = dict(zip(symbols, members, strict=True))
        # A str-valued enum whose symbols are its values is written by fastavro as is.
        to: Conv | None = None if by_value and issubclass(cls, str) else to_symbol.__getitem__
        frm: Conv | None = None if by_value else to_member.__getitem__

        def encode(v: Any) -> Any:
            try:
                return to_symbol[v]
            except (KeyError, TypeError):
                raise TypeError(f"{v!r} is not a member of {cls.__name__}") from None

        form = _Form(
            named,
            named.fullname,
            named.fullname,
            lambda v: isinstance(v, cls),
            2,
            encode,
            to=to,
            frm=frm,
            final=to_member.__getitem__,
            named=True,
        )
        self.enums[cls] = form
        return form

    def literal_type(
        self, values: tuple[Any, ...], where: str, literal_name: str, namespace: str | None
    ) -> _Form:
        first = values[0]
        allowed = frozenset(values)

        def match(v: Any) -> bool:
            try:
                return v in allowed and type(v) is type(first)
            except TypeError:
                return False

        if isinstance(first, bool):
            return _primitive("boolean", "boolean", match, 3, _enc_bool)
        if isinstance(first, int):
            return _primitive("long", "long", match, 3, _enc_long)
        strs = cast(tuple[str, ...], values)
        if not all(_NAME.match(v) for v in strs):
            return _primitive("string", "string", match, 3, _enc_str)
        symbols = tuple(dict.fromkeys(strs))
        key = (literal_name, symbols)
        named = self.literals.get(key)
        if named is None:
            name, n = literal_name, 1
            while _fullname(name, namespace) in self.defined:
                n += 1
                name = f"{literal_name}_{n}"
            named = _Named("enum", name, namespace, {"symbols": list(symbols)})
            self.claim(named.fullname, key, where)
            self.literals[key] = named

        def encode(v: Any) -> Any:
            _expect(match(v), v, f"one of {list(symbols)}")
            return v

        return _Form(named, named.fullname, named.fullname, match, 3, encode, named=True)

    def union_type(
        self,
        tp: Any,
        meta: list[Any],
        where: str,
        default: Any,
        literal_name: str,
        namespace: str | None,
    ) -> _Form:
        flat = _flatten(tp)
        has_null = any(a is type(None) for a in flat)
        forms = [
            self.derive(a, meta, where, _MISSING, literal_name, namespace)
            for a in flat
            if a is not type(None)
        ]
        if not forms:
            return _null()
        if len(forms) == 1 and not has_null:
            return forms[0]
        seen: dict[str, _Form] = {}
        for form in forms:
            if form.kind in seen:
                raise SchemaError(
                    f"{where}: the union {_type_repr(tp)} has two branches of Avro type "
                    f"'{form.kind}'; an Avro union holds each type once (wrap the "
                    "alternatives in models to tell them apart)"
                )
            seen[form.kind] = form
        dispatch = sorted(forms, key=lambda f: f.priority)
        null = _null()
        if default is None and has_null:
            order = [null, *forms]
        elif default is not _MISSING and default is not None:
            first = next((f for f in dispatch if f.match(default)), None)
            if first is None:
                raise SchemaError(
                    f"{where}: the default {default!r} fits no branch of {_type_repr(tp)}"
                )
            order = [first, *(f for f in forms if f is not first)] + ([null] if has_null else [])
        else:
            order = forms + ([null] if has_null else [])
        named = [f for f in forms if f.named]
        if named and len(forms) > 1:
            self.saw_named_union = True
        return _union(order, dispatch, has_null, self.named_unions)


def _is_cached(v: Any) -> bool:
    """Whether CPython may hand out this very object for equal decoded data."""
    if isinstance(v, bool):
        return True
    if isinstance(v, int):
        return -5 <= v <= 256
    if isinstance(v, str):
        return len(v) <= 1
    return False


def _field_default(info: FieldInfo) -> tuple[Any, bool]:
    """The field's default value (or _MISSING) and whether it came from a factory."""
    if info.default is not PydanticUndefined:
        return info.default, False
    factory = info.default_factory
    if factory is None or getattr(info, "default_factory_takes_data", False):
        return _MISSING, False
    try:
        return cast(Callable[[], Any], factory)(), True
    except Exception:
        return _MISSING, False


def _validation_key(info: FieldInfo, attr: str, avro_name: str, where: str) -> str:
    """The key under which pydantic validates the field, given its Avro field name."""
    va = info.validation_alias
    if va is None:
        return info.alias or attr
    if isinstance(va, str):
        return va
    choices = getattr(va, "choices", None)
    if choices is not None:
        names = [c for c in choices if isinstance(c, str)]
        if avro_name in names:
            return avro_name
        if names:
            return names[0]
    raise SchemaError(
        f"{where}: the validation alias {va!r} has no Avro form; use a plain alias "
        "(Field(alias=...)) or AliasChoices with a string"
    )


def _unwrap(tp: Any, meta: list[Any]) -> tuple[Any, list[Any]]:
    """Strip Annotated, NewType and type aliases; collect the Annotated metadata."""
    while True:
        if get_origin(tp) is Annotated:
            meta = [*meta, *tp.__metadata__]
            tp = tp.__origin__
        elif isinstance(tp, typing.NewType):
            tp = tp.__supertype__
        elif type(tp).__name__ == "TypeAliasType" and hasattr(tp, "__value__"):
            tp = tp.__value__
        else:
            return tp, meta


def _flatten(tp: Any) -> list[Any]:
    """The branches of a union, nested unions and Literals flattened, in order."""
    out: list[Any] = []
    origin = get_origin(tp)
    if origin is Literal:
        groups: dict[type, list[Any]] = {}
        for value in get_args(tp):
            if value is None:
                out.append(type(None))
            elif isinstance(value, enum.Enum):
                raise SchemaError(
                    f"Literal[{value!r}] has no Avro form; use the Enum type {type(value).__name__}"
                )
            elif type(value) in (str, int, bool):
                groups.setdefault(type(value), []).append(value)
            else:
                raise SchemaError(
                    f"Literal value {value!r} has no Avro form; use str or int values"
                )
        out.extend(_LiteralGroup(tuple(vs)) for vs in groups.values())
        return _dedupe(out)
    for arg in get_args(tp):
        inner, _ = _unwrap(arg, [])
        if get_origin(inner) in (Union, types.UnionType, Literal):
            out.extend(_flatten(inner))
        else:
            out.append(arg if get_origin(arg) is Annotated else inner)
    return _dedupe(out)


def _dedupe(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if item is type(None) and type(None) in out:
            continue
        out.append(item)
    return out


def _decimal_form(meta: list[Any], where: str) -> _Form:
    precision = scale = None
    stack = list(meta)
    while stack:
        m = stack.pop(0)
        if isinstance(m, FieldInfo):
            stack.extend(m.metadata)
            continue
        precision = getattr(m, "max_digits", None) or precision
        places = getattr(m, "decimal_places", None)
        scale = places if places is not None else scale
    if precision is None or scale is None:
        raise SchemaError(
            f"{where}: type Decimal needs a precision and scale for Avro; declare them with "
            "Field(max_digits=..., decimal_places=...)"
        )
    if not (isinstance(precision, int) and isinstance(scale, int) and 0 <= scale <= precision):
        raise SchemaError(
            f"{where}: Decimal with max_digits={precision} and decimal_places={scale} has no "
            "Avro form (need 0 <= decimal_places <= max_digits)"
        )
    return _primitive(
        {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale},
        "bytes",
        _is_decimal,
        9,
        _decimal_encoder(scale),
        str,
    )


def _timestamp() -> _Form:
    return _primitive(
        {"type": "long", "logicalType": "timestamp-micros"}, "long", _is_datetime, 5,
        _enc_datetime, int,
    )  # fmt: skip


def _date() -> _Form:
    return _primitive({"type": "int", "logicalType": "date"}, "int", _is_date, 6, _enc_date, int)


def _time() -> _Form:
    return _primitive(
        {"type": "long", "logicalType": "time-micros"}, "long", _is_time, 7, _enc_time, int
    )


_TIME_TYPES: dict[Any, Callable[[], _Form]] = {
    dt.datetime: _timestamp,
    dt.date: _date,
    dt.time: _time,
}
_PYDANTIC_TIME_TYPES: dict[str, Callable[[], _Form]] = {
    "AwareDatetime": _timestamp,
    "NaiveDatetime": _timestamp,
    "PastDatetime": _timestamp,
    "FutureDatetime": _timestamp,
    "PastDate": _date,
    "FutureDate": _date,
}
_ARRAY_ORIGINS = (
    list,
    tuple,
    set,
    frozenset,
    abc.Sequence,
    abc.MutableSequence,
    abc.Set,
    abc.MutableSet,
)
_MAP_ORIGINS = (dict, abc.Mapping, abc.MutableMapping)


def _array(item: _Form, is_list: bool) -> _Form:
    item_to, item_frm, item_encode = item.to, item.frm, item.encode
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

    def encode(v: Any) -> Any:
        _expect(_is_seq(v), v, "a list")
        return [item_encode(x) for x in v]

    return _Form(
        {"type": "array", "items": item.avro}, "array", "array", _is_seq, 14, encode,
        to=to, frm=frm, fix=item.fix,
    )  # fmt: skip


def _map(value: _Form) -> _Form:
    value_to, value_frm, value_encode = value.to, value.frm, value.encode
    to: Conv | None = None
    if value_to is not None:

        def to(v: Any) -> Any:
            return {k: value_to(x) for k, x in v.items()}

    frm: Conv | None = None
    if value_frm is not None:

        def frm(v: Any) -> Any:
            return {k: value_frm(x) for k, x in v.items()}

    def encode(v: Any) -> Any:
        _expect(_is_map(v), v, "a dict")
        return {str(k): value_encode(x) for k, x in v.items()}

    return _Form(
        {"type": "map", "values": value.avro}, "map", "map", _is_map, 15, encode,
        to=to, frm=frm, fix=value.fix,
    )  # fmt: skip


def _union(order: list[_Form], dispatch: list[_Form], has_null: bool, named_mode: bool) -> _Form:
    avro = [f.avro for f in order]
    branches = list(dispatch)
    names = [f.branch for f in order]

    def encode(v: Any) -> Any:
        for f in branches:
            if f.match(v):
                return f.encode(v)
        if has_null and v is None:
            return None
        raise TypeError(f"{v!r} fits no branch of {names}")

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
            final = f.final or f.frm or _identity
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

    return _Form(
        avro,
        "union",
        "union",
        lambda v: any(f.match(v) for f in branches) or (has_null and v is None),
        20,
        encode,
        to=to,
        frm=frm,
        fix=any(f.fix for f in branches),
        raw_type=single.raw_type if single is not None else None,
    )


def _identity(v: Any) -> Any:
    return v


def _compile(name: str, source: str, env: dict[str, Any], model: type) -> Conv:
    namespace = dict(env)
    code = compile(source, f"<streamlets.schema {model.__qualname__}.{name}>", "exec")
    exec(code, namespace)
    return cast(Conv, namespace[name])


def _compile_to(model: type[BaseModel], parts: list[tuple[str, str, Conv | None]]) -> Conv:
    """model instance -> dict for fastavro, with a field's converter only where needed."""
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


def _validator(model: type[BaseModel]) -> Conv:
    """model_validate in lax mode, straight to pydantic-core unless the class overrides it."""
    if getattr(model.model_validate, "__func__", None) is BaseModel.model_validate.__func__:  # type: ignore[attr-defined]
        validate_python = model.__pydantic_validator__.validate_python

        def validate(d: Any) -> Any:
            return validate_python(d, strict=False)

        return validate

    def validate_overridden(d: Any) -> Any:
        return model.model_validate(d, strict=False)

    return validate_overridden


def _record_encoder(
    model: type[BaseModel], encoders: list[tuple[str, str, Conv]], validate: Conv
) -> Conv:
    def encode(v: Any) -> Any:
        if isinstance(v, Mapping):
            v = validate(v)
        _expect(isinstance(v, model), v, f"a {model.__name__}")
        return {name: enc(getattr(v, attr)) for attr, name, enc in encoders}

    return encode


# ------------------------------------------------------------------ emission


_VERBATIM = frozenset({"default", "symbols", "aliases", "doc"})


def _emit(node: Any, namespace: str | None, seen: set[str], where: str) -> Any:
    """The JSON-able schema: each named type defined at its first use, then named."""
    if isinstance(node, _Named):
        fullname = node.fullname
        if fullname in seen:
            if namespace and "." not in fullname:
                raise SchemaError(
                    f"{where}: '{fullname}' has no Avro namespace but is used again inside "
                    f"the namespace '{namespace}', where Avro cannot name it; give it an "
                    "__avro_namespace__"
                )
            return fullname
        seen.add(fullname)
        out: dict[str, Any] = {"type": node.kind, "name": node.name}
        if (node.namespace or None) != (namespace or None):
            out["namespace"] = node.namespace or ""
        for key, value in node.body.items():
            out[key] = _emit(value, node.namespace, seen, where)
        return out
    if isinstance(node, list):
        return [_emit(v, namespace, seen, where) for v in node]
    if isinstance(node, dict):
        # "default" values stay the very objects the converters compare against.
        return {
            k: v
            if k in ("default", "symbols", "aliases", "doc")
            else _emit(v, namespace, seen, where)
            for k, v in node.items()
        }
    return node


# ------------------------------------------------------------------ public API


@dataclass(slots=True, frozen=True)
class _Derived:
    avro: dict[str, Any]
    to: Conv
    frm: Conv
    named_unions: bool


_DERIVED: dict[type[BaseModel], _Derived] = {}


def _derive(model: type[BaseModel]) -> _Derived:
    found = _DERIVED.get(model)
    if found is not None:
        return found
    deriver = _Deriver(model, named_unions=False)
    info = deriver.define_model(model, f"model {model.__name__}")
    if deriver.saw_named_union:
        # Unions of named types are read as (name, value) pairs; derive again with
        # converters that unpack them.
        deriver = _Deriver(model, named_unions=True)
        info = deriver.define_model(model, f"model {model.__name__}")
    avro = cast(dict[str, Any], _emit(info.named, None, set(), f"model {model.__name__}"))
    assert info.to is not None and info.validate is not None
    derived = _Derived(
        avro,
        _top_to(model, info.to, info.validate),
        _top_from(model, info.frm, info.validate),
        deriver.named_unions,
    )
    _DERIVED[model] = derived
    return derived


def _top_to(model: type[BaseModel], to: Conv, validate: Conv) -> Conv:
    def fallback(r: Any) -> Any:
        if isinstance(r, model):
            return to(r)
        if isinstance(r, Mapping):
            return to(validate(r))
        if isinstance(r, BaseModel) and type(r).__qualname__ == model.__qualname__:
            # The same model imported from another module (a test's copy, say): by fields.
            return to(validate(r.model_dump(by_alias=True)))
        raise TypeError(
            f"expected a {model.__name__} (or a dict of its fields), got {type(r).__name__}"
        )

    def to_datum(r: Any) -> Any:
        if r.__class__ is model:
            return to(r)
        return fallback(r)

    return to_datum


def _top_from(model: type[BaseModel], frm: Conv | None, validate: Conv) -> Conv:
    if frm is None:
        return validate

    def from_datum(d: Any) -> Any:
        return validate(frm(d))

    return from_datum


def avro_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The Avro record schema derived from a pydantic model (cached per class).

    The rules are in this module's docstring. In short: the record is named after the
    class; ``__avro_namespace__`` sets its namespace and ``__avro_aliases__`` the names it
    had before (so a renamed model reads data written under its old name); fields with a
    default get an Avro default; types without an Avro form raise
    :class:`~streamlets.errors.SchemaError` naming the model and field. The returned dict
    is shared: do not modify it.
    """
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise SchemaError(f"{model!r} is not a pydantic model class")
    return _derive(model).avro


def _parse(avro: Any, what: str) -> Any:
    try:
        problem = _structure_problem(avro)
        if problem:
            raise ValueError(problem)
        return fastavro.parse_schema(avro)
    except Exception as exc:
        raise SchemaError(f"{what} is not a valid Avro schema: {exc}") from exc


def _structure_problem(avro: Any) -> str | None:
    """What fastavro lets pass but the Avro specification does not (names, record fields)."""
    if isinstance(avro, list):
        return next((p for p in map(_structure_problem, avro) if p), None)
    if not isinstance(avro, dict):
        return None
    kind = avro.get("type")
    if kind in _NAMED_KINDS:
        name = avro.get("name")
        if not isinstance(name, str) or not _is_fullname(name):
            return f"{kind} name {name!r} is not a valid Avro name"
        ns = avro.get("namespace")
        if ns not in (None, "") and (not isinstance(ns, str) or not _is_fullname(ns)):
            return f"{kind} {name}: namespace {ns!r} is not a valid Avro namespace"
    if kind in ("record", "error"):
        fields = avro.get("fields")
        if not isinstance(fields, list):
            return f"record {avro.get('name')} has no list of fields"
        for f in fields:
            if not isinstance(f, dict) or "type" not in f:
                return f"record {avro.get('name')}: field {f!r} has no type"
            fname = f.get("name")
            if not isinstance(fname, str) or not _NAME.match(fname):
                return f"record {avro.get('name')}: field name {fname!r} is not a valid Avro name"
            problem = _structure_problem(f["type"])
            if problem:
                return problem
        return None
    for key in ("type", "items", "values"):
        problem = _structure_problem(avro.get(key))
        if problem:
            return problem
    return None


def _avro_name(avro: Any) -> tuple[str, str]:
    """(name, kind) of a JSON Avro schema: the full name of a named type, else the type."""
    if isinstance(avro, str):
        return avro, avro
    if isinstance(avro, list):
        return "union", "union"
    kind = avro.get("type")
    if kind in _NAMED_KINDS:
        name = str(avro.get("name", ""))
        ns = avro.get("namespace")
        return (name if "." in name else _fullname(name, ns)), str(kind)
    if isinstance(kind, str):
        return str(avro.get("logicalType") or kind), kind
    return _avro_name(kind)


def _interned(value: Any) -> Any:
    """A copy with interned strings: fastavro looks record fields up in each datum by the
    schema's field names, and an interned name matches the (interned) keys of the records
    by identity instead of comparing characters."""
    if isinstance(value, str):
        return sys.intern(value)
    if isinstance(value, list):
        return [_interned(v) for v in value]
    if isinstance(value, dict):
        return {sys.intern(k): _interned(v) for k, v in value.items()}
    return value


_AVRO_SCHEMAS: dict[str, Schema] = {}


class Schema:
    """The schema of a port: a pydantic model class or an Avro schema (records are then dicts).

    Build one with :meth:`Schema.of`. ``avro`` is the full JSON-able Avro schema (named
    types defined inline once), ``parsed`` fastavro's parsed form of it, ``name`` the full
    name of the top-level named type (or the type name), ``model`` the model class or
    ``None``. Instances are immutable and shared: the schema of a model class is built once.
    """

    __slots__ = ("_from", "_kind", "_to", "avro", "model", "name", "named_unions", "parsed")

    model: type[BaseModel] | None
    avro: AvroSchema
    name: str
    parsed: Any
    named_unions: bool

    def __init__(
        self,
        *,
        model: type[BaseModel] | None,
        avro: AvroSchema,
        parsed: Any,
        to: Conv | None,
        frm: Conv | None,
        named_unions: bool = False,
    ) -> None:
        self.model = model
        self.avro = avro
        self.parsed = parsed
        self.name, self._kind = _avro_name(avro)
        self._to = to
        self._from = frm
        #: whether readers must ask fastavro for (name, value) pairs in unions
        #: (``return_named_type=True``); the codecs do.
        self.named_unions = named_unions

    @classmethod
    def of(cls, source: type[BaseModel] | Mapping[str, Any] | str | list[Any] | Schema) -> Schema:
        """Build (and for model classes cache) the Schema of a port.

        ``source`` is a pydantic model class, an Avro schema (a dict, a list for a union, a
        primitive type name, or that schema as a JSON string) or a Schema (returned as is).
        Raises :class:`~streamlets.errors.SchemaError` with a clear message when the model
        has no Avro form or the Avro schema is invalid.
        """
        if isinstance(source, Schema):
            return source
        if isinstance(source, type):
            if not issubclass(source, BaseModel):
                raise SchemaError(
                    f"{source.__qualname__} is not a pydantic model; a port's schema is a "
                    "pydantic model class or an Avro schema"
                )
            return _model_schema(source)
        if isinstance(source, str) and source.lstrip()[:1] in ("{", "[", '"'):
            try:
                source = json.loads(source)
            except ValueError as exc:
                raise SchemaError(f"the Avro schema is not valid JSON: {exc}") from exc
        if not isinstance(source, str | list | Mapping):
            raise SchemaError(
                f"{source!r} is not a schema; use a pydantic model class or an Avro schema"
            )
        try:
            key = json.dumps(source, sort_keys=True)
            avro = _interned(json.loads(json.dumps(source)))
        except (TypeError, ValueError) as exc:
            raise SchemaError(f"the Avro schema is not JSON-able: {exc}") from exc
        found = _AVRO_SCHEMAS.get(key)
        if found is None:
            parsed = _parse(avro, "the port's schema")
            found = cls(model=None, avro=avro, parsed=parsed, to=None, frm=None)
            _AVRO_SCHEMAS[key] = found
        return found

    def to_datum(self, record: Any) -> Any:
        """The value fastavro writes for ``record`` (a model instance, or a dict of its fields)."""
        to = self._to
        return record if to is None else to(record)

    def from_datum(self, datum: Any) -> Any:
        """The record for a value fastavro read: a validated model instance, or the value.

        Raises pydantic's ``ValidationError`` when the value does not fit the model.
        """
        frm = self._from
        return datum if frm is None else frm(datum)

    def validate(self, record: Any) -> Any:
        """``record`` as this port's type, or a SchemaError naming the field that does not fit.

        A model schema accepts an instance of the model (returned as is) or a mapping of
        its fields (validated); an Avro schema checks the value with fastavro (a pydantic
        model is first turned into a dict of its fields).
        """
        model = self.model
        if model is not None:
            if isinstance(record, model):
                return record
            if not isinstance(record, Mapping):
                raise SchemaError(
                    f"expected a {model.__name__} for {self.describe()}, got "
                    f"{type(record).__name__}"
                )
            try:
                return model.model_validate(record)
            except ValidationError as exc:
                raise SchemaError(
                    f"record does not fit {self.describe()}: {describe_validation_error(exc)}"
                ) from exc
        if isinstance(record, BaseModel):
            record = record.model_dump(by_alias=True)
        try:
            avro_validate(record, self.parsed, raise_errors=True)
        except AvroValidationError as exc:
            raise SchemaError(
                f"record does not fit {self.describe()}: {_describe_avro_error(exc, self.name)}"
            ) from exc
        return record

    def describe(self) -> str:
        """A short human form of the schema.

        For example ``Reading (pydantic model app.Reading)`` or ``record Reading (Avro schema)``.
        """
        model = self.model
        if model is not None:
            return f"{model.__name__} (pydantic model {model.__module__}.{model.__qualname__})"
        if self._kind in _NAMED_KINDS:
            return f"{self._kind} {self.name} (Avro schema)"
        return f"{self.name} (Avro schema)"

    def __repr__(self) -> str:
        return f"<Schema {self.describe()}>"


_MODEL_SCHEMAS: dict[type[BaseModel], Schema] = {}


def _model_schema(model: type[BaseModel]) -> Schema:
    found = _MODEL_SCHEMAS.get(model)
    if found is None:
        derived = _derive(model)
        parsed = _parse(derived.avro, f"the schema derived from {model.__name__}")
        found = Schema(
            model=model,
            avro=derived.avro,
            parsed=parsed,
            to=derived.to,
            frm=derived.frm,
            named_unions=derived.named_unions,
        )
        _MODEL_SCHEMAS[model] = found
    return found
