"""Configuration overrides: a config file (``--config``) and ``--set name.key=value``.

Overrides are applied on top of the ``config:`` of each streamlet in the blueprint, file
first and ``--set`` last, and are validated with the streamlet's ``Config`` like the
blueprint itself, with the override's own location in every problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from blueprint.problems import Location, Problem, Severity
from blueprint.source import read_bytes
from blueprint.yamlsource import LocatedDict, load_yaml_source, load_yaml_text

__all__ = [
    "RESERVED_SECTIONS",
    "ConfigOverrides",
    "OverrideSyntaxError",
    "load_overrides",
    "parse_overrides",
    "parse_set",
]

#: Top-level keys of a config file that configure the runner, not a streamlet.
RESERVED_SECTIONS = ("kafka", "schema_registry", "runner")


class OverrideSyntaxError(ValueError):
    """A ``--set`` argument is not of the form ``streamlet.key=value``."""


@dataclass(frozen=True, slots=True)
class ConfigOverrides:
    """Per-streamlet config values, each with the place it came from."""

    values: Mapping[str, Mapping[str, tuple[Any, Location]]] = field(default_factory=dict)
    sections: Mapping[str, Any] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()

    def for_streamlet(self, name: str) -> Mapping[str, tuple[Any, Location]]:
        """The overrides of one streamlet (empty when none)."""
        return self.values.get(name, {})


def _nest(keys: list[str], value: Any) -> Any:
    for key in reversed(keys):
        value = {key: value}
    return value


def parse_set(assignment: str) -> tuple[str, str, Any]:
    """Split ``streamlet.key=value`` (``key`` may be dotted for nested config) into parts.

    The value is read as YAML, so ``25`` is a number and ``true`` a boolean; quote it
    (``'"25"'``) to force a string. Text that is not YAML stays a string; aliases that
    expand too far (see :func:`~blueprint.yamlsource.alias_problem`) raise
    :class:`OverrideSyntaxError`.
    """
    target, eq, raw = assignment.partition("=")
    parts = target.strip().split(".")
    if not eq or len(parts) < 2 or not all(parts):
        raise OverrideSyntaxError(
            f"--set {assignment!r} is not of the form streamlet.key=value (e.g. threshold.limit=25)"
        )
    value: Any = raw
    if raw.strip():
        document = load_yaml_text(raw, f"--set {assignment}")
        for problem in document.problems:
            if problem.code == "alias-expansion":
                raise OverrideSyntaxError(f"--set {target.strip()}: {problem.message}")
        if document.data is not None or not document.problems:
            value = document.data
    return parts[0], parts[1], _nest(parts[2:], value)


def _merge(base: Any, extra: Any) -> Any:
    if isinstance(base, dict) and isinstance(extra, dict):
        merged = dict(base)
        for key, value in extra.items():
            merged[key] = _merge(merged.get(key), value)
        return merged
    return extra


def load_overrides(config_file: str | None = None, sets: Sequence[str] = ()) -> ConfigOverrides:
    """Read a config file and ``--set`` assignments (raises OverrideSyntaxError, OSError)."""
    config = None if config_file is None else (read_bytes(config_file), config_file)
    return parse_overrides(config, sets)


def parse_overrides(
    config: tuple[str | bytes, str] | None = None, sets: Sequence[str] = ()
) -> ConfigOverrides:
    """Overrides from a config file's contents and ``--set`` assignments (no I/O).

    ``config`` is ``(text, file)``: the config file's YAML and the name its problems use.
    Raises :class:`OverrideSyntaxError` for a malformed ``--set``.
    """
    values: dict[str, dict[str, tuple[Any, Location]]] = {}
    sections: dict[str, Any] = {}
    problems: list[Problem] = []
    if config is not None:
        text, config_file = config
        document = load_yaml_source(text, config_file)
        problems.extend(document.problems)
        data = document.data
        if data is not None and not isinstance(data, LocatedDict):
            problems.append(
                Problem(
                    "invalid-type",
                    Severity.ERROR,
                    "the config file must be a mapping of streamlet name -> {key: value}",
                    Location(config_file, 1, 1),
                    "write e.g. 'threshold: {limit: 25}'",
                )
            )
        elif isinstance(data, LocatedDict):
            for name, body in data.items():
                if name in RESERVED_SECTIONS:
                    sections[str(name)] = body
                    continue
                if not isinstance(body, LocatedDict):
                    problems.append(
                        Problem(
                            "invalid-type",
                            Severity.ERROR,
                            f"config for streamlet {name!r} must be a mapping of key -> value",
                            data.value_loc(name),
                        )
                    )
                    continue
                entry = values.setdefault(str(name), {})
                for key, value in body.items():
                    entry[str(key)] = (value, body.value_loc(key))
    for assignment in sets:
        name, key, value = parse_set(assignment)
        entry = values.setdefault(name, {})
        previous = entry.get(key, (None, None))[0]
        entry[key] = (_merge(previous, value), Location(f"--set {assignment}"))
    return ConfigOverrides(values, sections, tuple(problems))
