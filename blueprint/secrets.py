"""Secret config values: which parts of a ``Config`` are secret, and keeping them out of
problems.

A field is secret when any part of its type is a pydantic secret (``SecretStr``,
``SecretBytes``, ``Secret[...]``), also inside a nested model, a list or a union. Verify
never shows what such a field was given: a failed validation names the input's kind only,
and the values are masked in message text that pydantic or a validator wrote and in a
``--set`` location (which holds the value).
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Secret, SecretBytes, SecretStr

__all__ = [
    "MASK",
    "is_secret_annotation",
    "is_secret_path",
    "mask_secrets",
    "scalar_texts",
    "secret_texts",
    "type_members",
]

#: What a secret value is replaced with in a message.
MASK = "***"

_SECRET_TYPES: tuple[type, ...] = (SecretStr, SecretBytes, Secret)
# Shorter values are masked only where they stand alone, so that a secret "ab" does not
# turn "table" into "t***le".
_ANYWHERE = 6


def type_members(annotation: Any) -> tuple[Any, ...]:
    """The types an annotation is made of: ``Annotated``'s type, a generic's origin and
    arguments, a union's members (empty for a plain type)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return (typing.get_args(annotation)[0],)
    if origin is not None:
        head = (origin,) if isinstance(origin, type) else ()
        return head + typing.get_args(annotation)
    if isinstance(annotation, types.UnionType):
        return typing.get_args(annotation)
    return ()


def is_secret_annotation(annotation: Any, _seen: set[int] | None = None) -> bool:
    """Whether a pydantic secret type is part of ``annotation`` (nested models included)."""
    seen = set() if _seen is None else _seen
    if id(annotation) in seen:
        return False
    seen.add(id(annotation))
    if isinstance(annotation, type):
        if issubclass(annotation, _SECRET_TYPES):
            return True
        if issubclass(annotation, BaseModel):
            return any(
                is_secret_annotation(f.annotation, seen) for f in annotation.model_fields.values()
            )
    return any(is_secret_annotation(member, seen) for member in type_members(annotation))


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type):
        return annotation if issubclass(annotation, BaseModel) else None
    models = {model for m in type_members(annotation) if (model := _model_of(m)) is not None}
    return models.pop() if len(models) == 1 else None


def is_secret_path(model: type[BaseModel], path: Sequence[str | int]) -> bool:
    """Whether the value at ``path`` (a validation error's ``loc``) in ``model`` may be secret.

    The path is followed through nested models as far as it names their fields; what it
    reaches is secret when a secret type is part of it. The empty path is the whole config:
    secret when any of its fields is.
    """
    annotation: Any = model
    for part in path:
        target = _model_of(annotation)
        if target is None:
            break
        info = next(
            (f for n, f in target.model_fields.items() if part in (n, f.alias)),
            None,
        )
        if info is None:
            break
        annotation = info.annotation
    return is_secret_annotation(annotation)


def scalar_texts(value: Any) -> Iterator[str]:
    """The text of every scalar in ``value`` (mappings and lists walked, booleans skipped)."""
    if isinstance(value, Mapping):
        for item in value.values():
            yield from scalar_texts(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from scalar_texts(item)
    elif isinstance(value, (SecretStr, SecretBytes)):
        yield str(value.get_secret_value())
    elif isinstance(value, bytes):
        yield value.decode("utf-8", "replace")
    elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
        yield str(value)


def _collect(model: type[BaseModel], data: Any, found: set[str]) -> None:
    if not isinstance(data, Mapping):
        found.update(scalar_texts(data))
        return
    for key, value in data.items():
        info = next((f for n, f in model.model_fields.items() if key in (n, f.alias)), None)
        if info is None or not is_secret_annotation(info.annotation):
            continue
        nested = _model_of(info.annotation)
        if nested is not None and isinstance(value, Mapping):
            _collect(nested, value, found)
        else:
            found.update(scalar_texts(value))


def secret_texts(model: type[BaseModel], data: Mapping[str, Any]) -> tuple[str, ...]:
    """The text of every value ``data`` gives to a secret field of ``model``.

    Nested models are followed, so only what reaches a secret field counts (the ``user``
    next to a ``password`` does not).
    """
    found: set[str] = set()
    _collect(model, data, found)
    found.discard("")
    return tuple(found)


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value in it replaced by :data:`MASK`."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        if len(secret) >= _ANYWHERE:
            text = text.replace(secret, MASK)
        else:
            text = re.sub(rf"(?<![\w.]){re.escape(secret)}(?![\w.])", MASK, text)
    return text
