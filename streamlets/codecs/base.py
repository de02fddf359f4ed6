"""The Codec protocol every topic codec implements, and the error reasons they share."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from pydantic import ValidationError

from streamlets.schema import describe_validation_error

__all__ = ["Codec", "error_reason"]


@runtime_checkable
class Codec(Protocol):
    """Turns the records of one schema into bytes and back."""

    name: str

    def encode(self, record: Any) -> bytes:
        """The bytes of ``record``; :class:`~streamlets.errors.EncodeError` when it does not fit."""
        ...

    def decode(self, data: bytes) -> Any:
        """The record in ``data``.

        Raises :class:`~streamlets.errors.DecodeError` when the bytes are not a record and
        :class:`~streamlets.errors.RecordValidationError` when the record does not fit the
        reader's schema.
        """
        ...


def error_reason(exc: BaseException) -> str:
    """Why ``exc`` happened, for a codec's error message (a ValidationError by field)."""
    if isinstance(exc, ValidationError):
        return describe_validation_error(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
