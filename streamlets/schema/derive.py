"""Deriving the Avro schema of a pydantic model: the type mapping, defaults and converters."""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import enum
import inspect
import re
import sys
import types
import typing
import uuid
from collections import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, cast, get_args, get_origin

from pydantic import BaseModel, RootModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from streamlets.errors import SchemaError
from streamlets.schema.avro import NAME, Named, emit, fullname, is_fullname
from streamlets.schema.converters import (
    Conv,
    FromDatumSource,
    array_converters,
    compile_to,
    map_converters,
    top_from,
    top_to,
    union_converters,
    validator,
)

__all__ = ["Derived", "avro_schema", "derive"]

_NOT_NAME = re.compile(r"[^A-Za-z0-9_]+")
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
        if not isinstance(name, str) or not is_fullname(name):
            raise SchemaError(f"{where}: {attr} entry {name!r} is not a valid Avro name")
    return names


def _namespace_of(cls: type, default: str | None, where: str) -> str | None:
    ns = getattr(cls, "__avro_namespace__", None)
    if ns is None or ns == "":
        return default
    if not isinstance(ns, str) or not is_fullname(ns):
        raise SchemaError(f"{where}: __avro_namespace__ {ns!r} is not a valid Avro namespace")
    return ns


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
    named: Named
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
        self.literals: dict[tuple[str, tuple[str, ...]], Named] = {}

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
        named = Named("record", name, namespace)
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
        frm_source = FromDatumSource()
        encoders: list[tuple[str, str, Conv]] = []
        any_fix = False
        seen_names: set[str] = set()

        for i, (attr, info_f) in enumerate(model.model_fields.items()):
            fwhere = f"field '{attr}' of {model.__name__}"
            avro_name = sys.intern(info_f.serialization_alias or info_f.alias or attr)
            if not NAME.match(avro_name):
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
                    isinstance(a, str) and NAME.match(a) for a in field_aliases
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

            frm_source.add_field(
                i,
                avro_name,
                raw=raw,
                has_raw=raw is not _MISSING,
                factory=factory,
                fix=form.fix,
                frm=form.frm,
                raw_type=form.raw_type,
                validation_key=_validation_key(info_f, attr, avro_name, fwhere),
            )

        info.to = compile_to(model, to_parts)
        info.frm = frm_source.compile(model)
        info.fix = any_fix
        info.validate = validator(model)
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
        by_value = all(isinstance(v, str) and NAME.match(v) for v in values) and len(
            set(values)
        ) == len(values)
        symbols = [cast(str, m.value) if by_value else m.name for m in members]
        bad = [s for s in symbols if not NAME.match(s)]
        if bad:
            raise SchemaError(f"{where}: {label} has names that are not Avro names: {bad}")
        named = Named("enum", _sanitise(cls.__name__), _namespace_of(cls, self.root_ns, label))
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
        default = getattr(cls, "__avro_default__", None)
        if default is not None:
            named.body["default"] = _enum_default(cls, default, to_symbol, symbols, where)
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
        if not all(NAME.match(v) for v in strs):
            return _primitive("string", "string", match, 3, _enc_str)
        symbols = tuple(dict.fromkeys(strs))
        key = (literal_name, symbols)
        named = self.literals.get(key)
        if named is None:
            name, n = literal_name, 1
            while fullname(name, namespace) in self.defined:
                n += 1
                name = f"{literal_name}_{n}"
            named = Named("enum", name, namespace, {"symbols": list(symbols)})
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


def _enum_default(
    cls: type[enum.Enum], default: Any, to_symbol: dict[Any, str], symbols: list[str], where: str
) -> str:
    """The Avro enum default of ``cls``'s ``__avro_default__``: a member, its name or value."""
    if isinstance(default, cls):
        return to_symbol[default]
    if isinstance(default, str):
        if default in symbols:
            return default
        member = cls.__members__.get(default)
        if member is not None:
            return to_symbol[member]
    with contextlib.suppress(TypeError):
        if default in to_symbol:
            return to_symbol[default]
    raise SchemaError(
        f"{where}: enum {cls.__name__} has __avro_default__ = {default!r}, which is none of its "
        f"members; name one of {', '.join(m.name for m in cls)}"
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
    item_encode = item.encode
    to, frm = array_converters(item.to, item.frm, is_list)

    def encode(v: Any) -> Any:
        _expect(_is_seq(v), v, "a list")
        return [item_encode(x) for x in v]

    return _Form(
        {"type": "array", "items": item.avro}, "array", "array", _is_seq, 14, encode,
        to=to, frm=frm, fix=item.fix,
    )  # fmt: skip


def _map(value: _Form) -> _Form:
    value_encode = value.encode
    to, frm = map_converters(value.to, value.frm)

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
    to, frm = union_converters(branches, names, named_mode)
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


def _record_encoder(
    model: type[BaseModel], encoders: list[tuple[str, str, Conv]], validate: Conv
) -> Conv:
    def encode(v: Any) -> Any:
        if isinstance(v, Mapping):
            v = validate(v)
        _expect(isinstance(v, model), v, f"a {model.__name__}")
        return {name: enc(getattr(v, attr)) for attr, name, enc in encoders}

    return encode


# ------------------------------------------------------------------ the derived schema


@dataclass(slots=True, frozen=True)
class Derived:
    """What a model becomes: its Avro schema and its port's top-level converters."""

    avro: dict[str, Any]
    to: Conv
    frm: Conv
    named_unions: bool


_DERIVED: dict[type[BaseModel], Derived] = {}


def derive(model: type[BaseModel]) -> Derived:
    """The Avro schema and converters of ``model`` (derived once per class)."""
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
    avro = cast(dict[str, Any], emit(info.named, None, set(), f"model {model.__name__}"))
    assert info.to is not None and info.validate is not None
    derived = Derived(
        avro,
        top_to(model, info.to, info.validate),
        top_from(info.frm, info.validate),
        deriver.named_unions,
    )
    _DERIVED[model] = derived
    return derived


def avro_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The Avro record schema derived from a pydantic model (cached per class).

    The rules are in the :mod:`streamlets.schema` docstring. In short: the record is named
    after the class; ``__avro_namespace__`` sets its namespace and ``__avro_aliases__`` the
    names it had before (so a renamed model reads data written under its old name); fields
    with a default get an Avro default; types without an Avro form raise
    :class:`~streamlets.errors.SchemaError` naming the model and field. The returned dict
    is shared: do not modify it.
    """
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise SchemaError(f"{model!r} is not a pydantic model class")
    return derive(model).avro
