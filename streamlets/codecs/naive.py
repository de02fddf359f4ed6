"""Naive datetimes written as UTC: said once, not silently.

A ``datetime`` without a timezone has no instant of its own; the codecs write it as UTC
(Avro's ``timestamp-micros`` and JSON alike), which is right only when the code meant UTC.
The first records a codec writes are looked at (:data:`RECORDS_CHECKED` of them, so the
stream pays nothing after that); a naive datetime in one is logged once per process and
field, with the fix. To refuse them instead, declare the field ``pydantic.AwareDatetime``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

__all__ = ["RECORDS_CHECKED", "NaiveCheck", "naive_check"]

log = logging.getLogger("streamlets.codecs")

#: Records a codec looks at for naive datetimes before it stops looking.
RECORDS_CHECKED = 100
_DEPTH = 8
_warned: set[tuple[str, str]] = set()


def _has_timestamps(schema: Any) -> bool:
    if isinstance(schema, Mapping):
        if str(schema.get("logicalType", "")).startswith("timestamp-"):
            return True
        return any(_has_timestamps(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_has_timestamps(v) for v in schema)
    return False


def _naive_path(value: Any, path: str, depth: int = 0) -> str | None:
    """The path of the first naive datetime in ``value`` (``None`` when it has none)."""
    if isinstance(value, dt.datetime):
        return path if value.tzinfo is None or value.utcoffset() is None else None
    if depth > _DEPTH:
        return None
    if isinstance(value, BaseModel):
        items: Any = vars(value).items()
    elif isinstance(value, Mapping):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = ((f"[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for key, item in items:
        step = f"{path}{key}" if str(key).startswith("[") else f"{path}.{key}"
        found = _naive_path(item, step, depth + 1)
        if found is not None:
            return found
    return None


class NaiveCheck:
    """Looks at the records of one schema until it has seen enough (or warned)."""

    __slots__ = ("left", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.left = RECORDS_CHECKED

    def check(self, record: Any) -> NaiveCheck | None:
        """Look at ``record``; returns itself to go on looking, ``None`` when done."""
        path = _naive_path(record, self.name)
        if path is not None:
            key = (self.name, path)
            if key not in _warned:
                _warned.add(key)
                log.warning(
                    "%s holds a datetime without a timezone (naive), which is written as "
                    "UTC; give it one (datetime.now(UTC), or .replace(tzinfo=...)), or "
                    "declare the field pydantic.AwareDatetime to refuse naive ones "
                    "(said once)",
                    path,
                )
            return None
        self.left -= 1
        return self if self.left > 0 else None


def naive_check(avro: Any, name: str) -> NaiveCheck | None:
    """A check for the records of a schema (``avro``, named ``name``) that has timestamps;
    ``None`` for one without (nothing to look at)."""
    return NaiveCheck(name) if _has_timestamps(avro) else None
