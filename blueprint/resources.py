"""Container resources of streamlets: Kubernetes quantities, checked and layered (pure).

A blueprint may give every streamlet ``resources:`` (``requests``/``limits`` of ``cpu``,
``memory`` and ``ephemeral-storage``) and the application a default for the streamlets
without their own. Only ``flow deploy`` uses them; the local and Kafka runners accept and
ignore them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType

__all__ = [
    "RESOURCE_KINDS",
    "RESOURCE_NAMES",
    "STORAGE_HINT",
    "ResourceSpec",
    "exceeds",
    "layer_resources",
    "quantity_problem",
    "quantity_value",
    "storage_problem",
]

#: The sections of ``resources:``.
RESOURCE_KINDS = ("requests", "limits")
#: The resources a streamlet's container may ask for.
RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage")

# Kubernetes' quantity grammar: a non-negative decimal with a binary-SI suffix (Ki..Ei),
# a decimal-SI suffix (n, u, m, k, M, G, T, P, E) or a decimal exponent (e3, E-2).
_QUANTITY = re.compile(
    r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?"
)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_FRACTIONS = {"n": "a billionth", "u": "a millionth", "m": "a thousandth"}
# Kubernetes keeps quantities in a 64-bit integer (of units or of nano-units).
_MAX_VALUE = Decimal(2**63 - 1)
_MAX_EXPONENT = 30
_EXAMPLES = {"cpu": "100m, 0.5 or 2", "memory": "128Mi, 512Mi or 1G", "storage": "1Gi or 20Gi"}
#: What ``state.storage`` takes.
STORAGE_HINT = "write the size of the state volume, e.g. 'storage: 1Gi' or 'storage: 20Gi'"
#: The smallest state volume worth asking for: a RocksDB store's own files (its log,
#: manifest and options) take some hundred kilobytes before it holds a value.
_MIN_STORAGE = Decimal(1024**2)


def quantity_value(text: str) -> Decimal | None:
    """The amount a Kubernetes quantity stands for (``"100m"`` -> 0.1), ``None`` if invalid."""
    found = _QUANTITY.fullmatch(text)
    if found is None:
        return None
    number = Decimal(found["number"])
    suffix = found["suffix"] or ""
    if suffix in _BINARY:
        return number * (Decimal(1024) ** _BINARY[suffix])
    if suffix in _DECIMAL:
        return number.scaleb(_DECIMAL[suffix])
    exponent = int(suffix[1:])
    return number.scaleb(exponent) if abs(exponent) <= _MAX_EXPONENT else None


def quantity_problem(resource: str, text: str) -> tuple[str, str] | None:
    """What is wrong with ``text`` as a quantity of ``resource``: ``(message, hint)``.

    Beyond Kubernetes' grammar it refuses what is surely a slip: memory in fractions of a
    byte (``128m`` is 0.128 bytes) and CPU in binary units (``1Gi`` would be 2^30 cores).
    """
    example = _EXAMPLES.get(resource, "1Gi or 500M")
    found = _QUANTITY.fullmatch(text)
    if found is None:
        return (
            f"{text!r} is not a Kubernetes quantity",
            f"write a number with an optional unit, e.g. {example}",
        )
    suffix = found["suffix"] or ""
    if resource != "cpu" and suffix in _FRACTIONS:
        return (
            f"{text!r} is a fraction of a byte ('{suffix}' means {_FRACTIONS[suffix]})",
            f"did you mean '{found['number']}Mi'?",
        )
    if resource == "cpu" and suffix in _BINARY:
        return (
            f"{text!r} is not a CPU amount: CPU is counted in cores, not bytes",
            f"write e.g. {example} (m is a thousandth of a core)",
        )
    value = quantity_value(text)
    if value is None or value > _MAX_VALUE:
        return (f"{text!r} is out of the range Kubernetes can hold", f"write e.g. {example}")
    return None


def storage_problem(text: str) -> tuple[str, str] | None:
    """What is wrong with ``text`` as the size of a state volume: ``(message, hint)``.

    A quantity as for memory, and at least 1Mi: ``storage: 1`` is one byte, surely a
    slip for 1Gi.
    """
    problem = quantity_problem("storage", text)
    if problem is not None:
        return problem
    value = quantity_value(text)
    assert value is not None  # a valid quantity has a value
    if value == 0:
        return (f"{text!r} is no space at all", STORAGE_HINT)
    if value < _MIN_STORAGE:
        found = _QUANTITY.fullmatch(text)
        unitless = found is not None and not found["suffix"]
        amount = f"{value:,.0f}" if value == value.to_integral_value() else f"{value:f}"
        return (
            f"{text!r} is {amount} byte{'' if value == 1 else 's'}, too small for a state "
            "store (at least 1Mi)",
            f"did you mean '{found['number']}Gi'? A number without a unit counts bytes"
            if unitless and found is not None
            else STORAGE_HINT,
        )
    return None


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    """``requests`` and ``limits`` of a container, each a read-only ``{resource: quantity}``."""

    requests: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    limits: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def as_dict(self) -> dict[str, dict[str, str]]:
        """Plain ``{"requests": {...}, "limits": {...}}``, without empty sections."""
        found = {"requests": dict(self.requests), "limits": dict(self.limits)}
        return {kind: values for kind, values in found.items() if values}


def exceeds(request: str, limit: str) -> bool:
    """Whether the quantity ``request`` is more than ``limit`` (``False`` if either is invalid)."""
    wanted, allowed = quantity_value(request), quantity_value(limit)
    return wanted is not None and allowed is not None and wanted > allowed


def layer_resources(
    *layers: Mapping[str, Mapping[str, str]] | None,
) -> dict[str, dict[str, str]]:
    """The resources that ``layers`` (lowest precedence first) give together.

    Each layer sets a request or a limit key by key, over the layers before it. When a
    layer's request is above a limit that only an earlier layer set, the limit is raised to
    it (and a limit below an earlier request lowers that request): the more specific value
    wins, and Kubernetes never sees a request above its limit.
    """
    result: dict[str, dict[str, str]] = {"requests": {}, "limits": {}}
    for layer in layers:
        if not layer:
            continue
        requests, limits = dict(layer.get("requests") or {}), dict(layer.get("limits") or {})
        result["requests"].update(requests)
        result["limits"].update(limits)
        for name, value in requests.items():
            limit = result["limits"].get(name)
            if name not in limits and limit is not None and exceeds(value, limit):
                result["limits"][name] = value
        for name, value in limits.items():
            request = result["requests"].get(name)
            if name not in requests and request is not None and exceeds(request, value):
                result["requests"][name] = value
    order = {name: i for i, name in enumerate(RESOURCE_NAMES)}
    return {
        kind: dict(sorted(values.items(), key=lambda item: (order.get(item[0], 99), item[0])))
        for kind, values in result.items()
        if values
    }
