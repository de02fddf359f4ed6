"""Forwarding a record's input bytes when a streamlet passes it on unchanged.

Filters and routers return the record they were given. When the inlet's bytes are already
Avro of the outlet's schema, encoding that record again would only produce the same bytes
at the cost of a fastavro call, so the core forwards the input bytes instead, but only
when it can tell that the record was not changed in place:

* the schema is a record whose fields hold immutable values only (no nested records,
  arrays or maps), so a shallow copy taken before ``process()`` is a true snapshot;
* the record ``process()`` returned *is* the decoded one, compares equal to the snapshot,
  and every field whose encoding equality does not pin down (numbers, booleans, unions,
  decimals: ``0.0 == -0.0``, ``1 == 1.0 == True``) holds the very same object.

:func:`unchanged_check` builds that check for a schema (``None`` when the schema does not
allow it). :class:`PassthroughGate` turns the snapshot off for a streamlet that seldom
passes records on unchanged, where it would cost more than it saves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streamlets.schema.avro import named_types

__all__ = ["PassthroughGate", "UnchangedCheck", "unchanged_check"]

UnchangedCheck = Callable[[dict[str, Any], dict[str, Any]], bool]

# Types whose values are immutable and whose encoding equal values share.
_EQUAL_IS_SAME = frozenset({"null", "string", "bytes"})
# Immutable, but equal values may encode differently: compare by identity.
_IDENTITY = frozenset({"boolean", "int", "long", "float", "double"})


def _field_kind(schema: Any, named: dict[str, Any]) -> str | None:
    """``"equal"``, ``"identity"`` or ``None`` (mutable or unknown: no passthrough)."""
    if isinstance(schema, str):
        if schema in _EQUAL_IS_SAME:
            return "equal"
        if schema in _IDENTITY:
            return "identity"
        if schema in named:
            return _field_kind(named[schema], named)
        return None
    if isinstance(schema, list):  # a union: the branch follows the value's type
        kinds = [_field_kind(branch, named) for branch in schema]
        return None if None in kinds else "identity"
    if not isinstance(schema, dict):
        return None
    kind = schema.get("type")
    if kind in ("enum", "fixed"):
        return "equal"
    if schema.get("logicalType") is not None and isinstance(kind, str):
        # Datetimes, dates, times, UUIDs and decimals are immutable; an equal value of
        # another type (a Decimal equal to an int, ...) may encode otherwise.
        return "identity" if _field_kind(kind, named) is not None else None
    if isinstance(kind, str) and kind not in ("record", "error", "array", "map"):
        return _field_kind(kind, named)
    return None


def unchanged_check(parsed: Any) -> UnchangedCheck | None:
    """The ``(record, snapshot) -> bool`` check for records of the parsed Avro ``parsed``
    schema, or ``None`` when its records may hold mutable values (or it is no record)."""
    if not isinstance(parsed, dict) or parsed.get("type") not in ("record", "error"):
        return None
    named = named_types(parsed)
    strict: list[str] = []
    for f in parsed["fields"]:
        kind = _field_kind(f["type"], named)
        if kind is None:
            return None
        if kind == "identity":
            strict.append(f["name"])
    by_identity = tuple(strict)

    def unchanged(record: dict[str, Any], snapshot: dict[str, Any]) -> bool:
        if record != snapshot:
            return False
        for name in by_identity:  # noqa: SIM110 - a loop is faster than all(genexpr)
            if record[name] is not snapshot[name]:
                return False
        return True

    return unchanged


class PassthroughGate:
    """Decides whether snapshots are worth taking, from how often they paid off.

    A snapshot costs a dict copy per record; forwarding saves an encode, about ten times
    as much. After ``warmup`` records, snapshots stop for good when fewer than one record
    in ``ratio`` went out unchanged.
    """

    __slots__ = ("forwarded", "open", "ratio", "seen", "warmup")

    def __init__(self, *, warmup: int = 1024, ratio: int = 8) -> None:
        self.open = True
        self.seen = 0
        self.forwarded = 0
        self.warmup = warmup
        self.ratio = ratio

    def record(self, seen: int, forwarded: int) -> None:
        """Count a batch: ``seen`` records snapshotted, ``forwarded`` of them passed on."""
        self.seen += seen
        self.forwarded += forwarded
        if self.seen >= self.warmup and self.forwarded * self.ratio < self.seen:
            self.open = False
