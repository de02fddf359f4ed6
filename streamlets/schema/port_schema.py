"""Schema, the schema of a port: built once per model class or Avro schema, and shared."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastavro.validation import ValidationError as AvroValidationError
from fastavro.validation import validate as avro_validate
from pydantic import BaseModel, ValidationError

from streamlets.errors import SchemaError
from streamlets.schema.avro import NAMED_KINDS, AvroSchema, avro_name, interned, parse
from streamlets.schema.converters import Conv
from streamlets.schema.derive import derive

__all__ = ["Schema", "describe_validation_error"]


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
        self.name, self._kind = avro_name(avro)
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
            avro = interned(json.loads(json.dumps(source)))
        except (TypeError, ValueError) as exc:
            raise SchemaError(f"the Avro schema is not JSON-able: {exc}") from exc
        found = _AVRO_SCHEMAS.get(key)
        if found is None:
            parsed = parse(avro, "the port's schema")
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
        if self._kind in NAMED_KINDS:
            return f"{self._kind} {self.name} (Avro schema)"
        return f"{self.name} (Avro schema)"

    def __repr__(self) -> str:
        return f"<Schema {self.describe()}>"


_MODEL_SCHEMAS: dict[type[BaseModel], Schema] = {}


def _model_schema(model: type[BaseModel]) -> Schema:
    found = _MODEL_SCHEMAS.get(model)
    if found is None:
        derived = derive(model)
        parsed = parse(derived.avro, f"the schema derived from {model.__name__}")
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
