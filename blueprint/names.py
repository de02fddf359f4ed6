"""Name rules: application and streamlet names are DNS-1123 labels, topics Kafka names,
classes ``module:Class``."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

__all__ = [
    "CLASS_PATH_HINT",
    "DNS_LABEL_MAX",
    "KAFKA_TOPIC_MAX",
    "class_path_problem",
    "did_you_mean",
    "dns_label_problem",
    "kafka_topic_problem",
    "suggest_dns_label",
]

DNS_LABEL_MAX = 63
KAFKA_TOPIC_MAX = 249
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_KAFKA_TOPIC = re.compile(r"[a-zA-Z0-9._-]+")
#: What to write instead of a ``class`` that is not ``module:Class``.
CLASS_PATH_HINT = (
    "write the module's dotted import path, a colon and the class name, "
    "e.g. 'sensors.streamlets:Threshold'"
)
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def dns_label_problem(name: str) -> str | None:
    """Why ``name`` is not a DNS-1123 label, or ``None`` when it is one."""
    if not name:
        return "it is empty"
    if len(name) > DNS_LABEL_MAX:
        return f"it is {len(name)} characters long; at most {DNS_LABEL_MAX} are allowed"
    if not _DNS_LABEL.fullmatch(name):
        return (
            "it must consist of lower-case letters, digits and '-', "
            "and start and end with a letter or digit"
        )
    return None


def suggest_dns_label(name: str) -> str:
    """A DNS-1123 label close to ``name`` (for hints)."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return label[:DNS_LABEL_MAX].rstrip("-") or "app"


def kafka_topic_problem(name: str) -> str | None:
    """Why ``name`` is not a legal Kafka topic name, or ``None`` when it is one."""
    if not name:
        return "it is empty"
    if name in {".", ".."}:
        return "'.' and '..' are not allowed as topic names"
    if len(name) > KAFKA_TOPIC_MAX:
        return f"it is {len(name)} characters long; Kafka allows at most {KAFKA_TOPIC_MAX}"
    if not _KAFKA_TOPIC.fullmatch(name):
        return "Kafka topic names may contain only ASCII letters, digits, '.', '_' and '-'"
    return None


def class_path_problem(path: str) -> str | None:
    """Why ``path`` is not of the form ``module:Class``, or ``None`` when it is.

    ``module`` is a dotted import path and ``Class`` a (possibly dotted) attribute path of
    it; spaces around either part are allowed.
    """
    module, sep, qualname = path.partition(":")
    if not sep:
        return "it has no ':' between the module and the class"
    if not _DOTTED.fullmatch(module.strip()):
        return (
            f"{module.strip()!r} is not a dotted module path"
            if module.strip()
            else ("the module before the ':' is missing")
        )
    if not _DOTTED.fullmatch(qualname.strip()):
        return (
            f"{qualname.strip()!r} is not a class name"
            if qualname.strip()
            else ("the class after the ':' is missing")
        )
    return None


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A hint ``did you mean 'x'?`` naming the closest candidate, or ``None``."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None
