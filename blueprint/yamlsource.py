"""YAML loading that keeps the line and column of every key and value.

Mappings load as :class:`LocatedDict` and sequences as :class:`LocatedList`: plain
``dict``/``list`` subclasses that also remember where each key and item was written, so
every problem can point at ``file:line:column``. A key written twice in one mapping is
reported, not silently overwritten.

Aliases (``*name``) are bounded: written out in full, the values they copy may add at most
:data:`ALIAS_EXPANSION_LIMIT` characters to the document, and an alias may not refer to
the value that contains it. PyYAML shares an aliased value instead of copying it, so an
"alias bomb" (anchors nesting aliases of anchors) loads in no time, but everything that
walks the data afterwards (validation, ``json.dumps`` of an Avro default, ``flow deploy``)
would expand it to gigabytes. The check runs on the composed nodes, before any value is
built, in time linear in the document.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from blueprint.problems import Location, Problem, Severity

__all__ = [
    "ALIAS_EXPANSION_LIMIT",
    "LocatedDict",
    "LocatedList",
    "YamlDocument",
    "alias_problem",
    "load_yaml_source",
    "load_yaml_text",
]

#: How many characters the values copied by aliases may add to a document, written out.
#: Far above what shared config or schemas need, far below what exhausts memory.
ALIAS_EXPANSION_LIMIT = 1_000_000

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


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _alias_events(text: str) -> list[yaml.AliasEvent]:
    return [e for e in yaml.parse(text, Loader=_BaseLoader) if isinstance(e, yaml.AliasEvent)]


def alias_problem(root: yaml.Node, text: str, file: str) -> Problem | None:
    """An ``alias-expansion`` problem when the aliases of a composed document go too far.

    ``root`` is the document's node graph (an aliased node appears once and is shared by
    its uses), ``text`` the YAML it was composed from (read again, only when a problem is
    found, to point at the alias's own line and column). Too far means: written out
    without aliases, the document would grow by more than :data:`ALIAS_EXPANSION_LIMIT`
    characters; or an alias refers to the collection it is part of (it would never end).
    """
    # Each node's size is its text when written out without aliases: a scalar its value,
    # a collection two brackets plus its children. Walk the nodes in document order (the
    # order the aliases were written in); a node met a second time is met through an
    # alias, and adds its size again without being walked again.
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    uses = 0
    added = 0
    stack: list[tuple[yaml.Node, list[yaml.Node], int]] = [(root, _children(root)[::-1], 2)]
    open_nodes.add(id(root))
    while stack:
        node, pending, size = stack[-1]
        if not pending:
            stack.pop()
            if isinstance(node, yaml.ScalarNode):
                size = len(node.value) + 1
            open_nodes.discard(id(node))
            sizes[id(node)] = size
            if stack:
                parent, rest, parent_size = stack[-1]
                stack[-1] = (parent, rest, parent_size + size)
            continue
        child = pending.pop()
        if id(child) in open_nodes:
            return _alias_at(text, file, uses, cycle=True)
        if id(child) in sizes:
            uses += 1
            added += sizes[id(child)]
            if added > ALIAS_EXPANSION_LIMIT:
                return _alias_at(text, file, uses - 1, cycle=False)
            stack[-1] = (node, pending, size + sizes[id(child)])
            continue
        open_nodes.add(id(child))
        stack.append((child, _children(child)[::-1], 2))
    return None


def _alias_at(text: str, file: str, index: int, *, cycle: bool) -> Problem:
    events = _alias_events(text)
    event = events[index] if index < len(events) else None
    where = _location(file, event.start_mark) if event is not None else Location(file)
    name = f"*{event.anchor}" if event is not None else "an alias"
    if cycle:
        return Problem(
            "alias-expansion",
            Severity.ERROR,
            f"the alias {name} refers to a value that contains it: written out, it would never end",
            where,
            "point the alias at a value outside the one it is written in, or write the value out",
        )
    return Problem(
        "alias-expansion",
        Severity.ERROR,
        f"with the alias {name}, the values copied by YAML aliases add more than "
        f"{ALIAS_EXPANSION_LIMIT:,} characters to the document (an alias bomb?)",
        where,
        "write the values out, or alias smaller values; aliases that nest aliases "
        "multiply what they copy",
    )


def _make_loader(file: str, text: str, problems: list[Problem]) -> type[yaml.SafeLoader]:
    class Loader(_BaseLoader):  # type: ignore[misc, valid-type]
        def construct_document(self, node: yaml.Node) -> Any:
            found = alias_problem(node, text, file)
            if found is not None:
                problems.append(found)
                return None
            return super().construct_document(node)

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
                    problems.append(
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
    problems: list[Problem] = []
    loader = _make_loader(file, text, problems)
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
    return YamlDocument(data, tuple(problems))


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
