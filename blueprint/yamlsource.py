"""YAML loading that keeps the line and column of every key and value.

Mappings load as :class:`LocatedDict` and sequences as :class:`LocatedList`: plain
``dict``/``list`` subclasses that also remember where each key and item was written, so
every problem can point at ``file:line:column``. A key written twice in one mapping is
reported, not silently overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from blueprint.problems import Location, Problem, Severity

__all__ = ["LocatedDict", "LocatedList", "YamlDocument", "load_yaml_source", "load_yaml_text"]

try:  # The C parser is several times faster on large blueprints.
    _BaseLoader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _BaseLoader = yaml.SafeLoader


class LocatedDict(dict[Any, Any]):
    """A mapping that knows where it, each of its keys and each of its values were written."""

    loc: Location
    key_locs: dict[Any, Location]
    value_locs: dict[Any, Location]

    def key_loc(self, key: Any) -> Location:
        """Where ``key`` was written (the mapping's own location when unknown)."""
        return self.key_locs.get(key, self.loc)

    def value_loc(self, key: Any) -> Location:
        """Where the value of ``key`` was written (the mapping's own location when unknown)."""
        return self.value_locs.get(key, self.loc)


class LocatedList(list[Any]):
    """A sequence that knows where it and each of its items were written."""

    loc: Location
    item_locs: list[Location]

    def item_loc(self, index: int) -> Location:
        """Where item ``index`` was written."""
        return self.item_locs[index] if index < len(self.item_locs) else self.loc


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """The result of loading: the data (``None`` on failure) and the problems found."""

    data: Any
    problems: tuple[Problem, ...]


def _location(file: str, mark: Any) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


def _make_loader(file: str, duplicates: list[Problem]) -> type[yaml.SafeLoader]:
    class Loader(_BaseLoader):  # type: ignore[misc, valid-type]
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> LocatedDict:
            seen: dict[Any, Location] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, (str, int, float, bool)) and key is not None:
                    continue  # construct_object raised already for unhashables; keep going
                where = _location(file, key_node.start_mark)
                if key in seen:
                    first = seen[key]
                    duplicates.append(
                        Problem(
                            "duplicate-key",
                            Severity.ERROR,
                            f"key {key!r} is given twice in this mapping "
                            f"(first at line {first.line})",
                            where,
                            "remove one of them; YAML would silently keep only the last",
                        )
                    )
                else:
                    seen[key] = where
            self.flatten_mapping(node)
            result = LocatedDict()
            result.loc = _location(file, node.start_mark)
            result.key_locs = {}
            result.value_locs = {}
            for key_node, value_node in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        "found an unhashable key (a list or mapping used as a key)",
                        key_node.start_mark,
                    ) from None
                result[key] = self.construct_object(value_node, deep=True)
                result.key_locs.setdefault(key, _location(file, key_node.start_mark))
                result.value_locs[key] = _location(file, value_node.start_mark)
            return result

        def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> LocatedList:
            result = LocatedList(self.construct_object(child, deep=True) for child in node.value)
            result.loc = _location(file, node.start_mark)
            result.item_locs = [_location(file, child.start_mark) for child in node.value]
            return result

    # Plain "!!map"/"!!seq" tags go through the methods above as well.
    Loader.add_constructor("tag:yaml.org,2002:map", Loader.construct_mapping)
    Loader.add_constructor("tag:yaml.org,2002:seq", Loader.construct_sequence)
    return Loader


def load_yaml_text(text: str, file: str) -> YamlDocument:
    """Load one YAML document from ``text``; ``file`` names it in locations."""
    duplicates: list[Problem] = []
    loader = _make_loader(file, duplicates)
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _location(file, mark) if mark is not None else Location(file)
        reason = exc.problem or exc.context or "invalid YAML"
        context = f" {exc.context}" if exc.context and exc.problem else ""
        return YamlDocument(
            None,
            (
                Problem(
                    "yaml-syntax",
                    Severity.ERROR,
                    f"invalid YAML{context}: {reason}",
                    where,
                    "check indentation, quoting and that every ':' is followed by a space",
                ),
            ),
        )
    except (yaml.YAMLError, RecursionError, ValueError, OverflowError) as exc:
        return YamlDocument(
            None,
            (Problem("yaml-syntax", Severity.ERROR, f"invalid YAML: {exc}", Location(file)),),
        )
    return YamlDocument(data, tuple(duplicates))


def load_yaml_source(source: str | bytes, file: str) -> YamlDocument:
    """Load one YAML document from text or from bytes read from a file.

    Bytes are decoded as UTF-8 (a byte-order mark allowed); bytes that are not UTF-8 give a
    ``yaml-syntax`` problem with the line they are on, not an exception.
    """
    if isinstance(source, str):
        return load_yaml_text(source, file)
    try:
        text = source.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = source[: exc.start].count(b"\n") + 1
        return YamlDocument(
            None,
            (
                Problem(
                    "yaml-syntax",
                    Severity.ERROR,
                    f"the file is not UTF-8 text (byte {exc.start} is {source[exc.start]:#04x})",
                    Location(file, line),
                    "save the file as UTF-8",
                ),
            ),
        )
    return load_yaml_text(text, file)
