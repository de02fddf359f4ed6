"""Reading the records of a JSON request body, strictly, against a port's schema.

The body is one JSON record or a JSON array of records. JSON is taken as it comes, with
no coercion: ``true`` is not an integer and ``"1"`` is not a number. A pydantic model is
validated in pydantic's strict mode for JSON input (ISO 8601 strings are still datetimes,
UUIDs and enum values, as JSON has no other way to spell them); an Avro schema by fastavro,
which does not coerce either. Both parse JSON with pydantic-core's parser, whose nesting
limit turns a body nested 100,000 deep into an error, not a ``RecursionError``.
"""

from __future__ import annotations

from typing import Any

import pydantic_core
from fastavro.validation import ValidationError as AvroValidationError
from pydantic import TypeAdapter, ValidationError

from streamlets.errors import SchemaError, StreamletsError
from streamlets.schema import Schema

__all__ = ["JsonBodyError", "JsonRecords"]


class JsonBodyError(StreamletsError):
    """A request body that is not JSON, or a record in it that does not fit the schema.

    ``index`` is the position of the record in the body (``None`` when the body is not
    JSON), ``field`` the dotted path of the first field that does not fit (when known) and
    ``reason`` what is wrong with it.
    """

    def __init__(
        self,
        message: str,
        *,
        index: int | None = None,
        field: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.index = index
        self.field = field
        self.reason = reason

    def to_json(self) -> dict[str, Any]:
        """The body of the ``400`` answer: ``error``, ``field``, ``index`` and ``reason``."""
        return {
            "error": str(self),
            "field": self.field,
            "index": self.index,
            "reason": self.reason,
        }


class JsonRecords:
    """Turns a request body into the records of ``schema``: :meth:`read`."""

    __slots__ = ("_many", "_one", "schema")

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._one: TypeAdapter[Any] | None = None
        self._many: TypeAdapter[list[Any]] | None = None
        if schema.model is not None:
            self._one = TypeAdapter(schema.model)
            self._many = TypeAdapter(list[schema.model])  # type: ignore[name-defined]

    def read(self, body: bytes) -> list[Any]:
        """The records in ``body`` (a JSON record or a JSON array of them), all or none.

        Raises :class:`JsonBodyError` for a body that is not JSON and for the first record
        that does not fit the schema.
        """
        if self._one is not None and self._many is not None:
            many = body.lstrip()[:1] == b"["
            try:
                if many:
                    return self._many.validate_json(body, strict=True)
                return [self._one.validate_json(body, strict=True)]
            except ValidationError as exc:
                raise self._model_error(exc, many) from None
        try:
            data = pydantic_core.from_json(body, allow_inf_nan=False)
        except ValueError as exc:
            raise JsonBodyError(f"the body is not JSON: {exc}") from None
        items = data if isinstance(data, list) else [data]
        for index, item in enumerate(items):
            try:
                self.schema.validate(item)
            except SchemaError as exc:
                raise self._avro_error(exc, index) from None
        return items

    def _model_error(self, exc: ValidationError, many: bool) -> JsonBodyError:
        errors = exc.errors(include_url=False, include_input=False)
        first = errors[0] if errors else None
        if first is not None and first["type"] == "json_invalid":
            reason = first.get("ctx", {}).get("error", first["msg"])
            return JsonBodyError(f"the body is not JSON: {reason}")
        loc: tuple[Any, ...] = tuple(first["loc"]) if first is not None else ()
        index = 0
        if many and loc and isinstance(loc[0], int):
            index, loc = loc[0], loc[1:]
        # Only the errors of the record that failed: the loc of each starts with its index.
        parts = []
        for error in errors:
            where = tuple(error["loc"])
            if many:
                if not where or where[0] != index:
                    continue
                where = where[1:]
            path = ".".join(str(part) for part in where)
            parts.append(f"field '{path}': {error['msg']}" if path else str(error["msg"]))
        detail = "; ".join(parts[:3]) + (f"; and {len(parts) - 3} more" if len(parts) > 3 else "")
        return JsonBodyError(
            f"record {index} does not fit {self.schema.describe()}: {detail}",
            index=index,
            field=".".join(str(part) for part in loc) or None,
            reason=first["msg"] if first is not None else None,
        )

    def _avro_error(self, exc: SchemaError, index: int) -> JsonBodyError:
        field: str | None = None
        reason: str | None = None
        cause = exc.__cause__
        if isinstance(cause, AvroValidationError) and cause.errors:
            first = cause.errors[0]
            path = str(first.field or "")
            root = self.schema.name
            if path.startswith(root + "."):
                path = path[len(root) + 1 :]
            field = None if path in ("", root) else path
            expected = first.schema if isinstance(first.schema, str) else "a record"
            reason = f"expected {expected}, got {type(first.datum).__name__}"
        return JsonBodyError(f"record {index}: {exc}", index=index, field=field, reason=reason)
