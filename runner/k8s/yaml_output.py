"""YAML text of manifests: deterministic, block style, multi-line strings kept readable."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml

__all__ = ["to_yaml", "to_yaml_stream"]


class _Dumper(yaml.SafeDumper):
    """Safe dumper that indents lists under their key and writes multi-line text as ``|``."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        # Shared dicts (the same labels on a resource and its pods) are written out in
        # full: anchors and aliases are valid YAML but confuse people and some tools.
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(data: Mapping[str, Any]) -> str:
    """One YAML document; keys keep their insertion order, so output is stable."""
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )


def to_yaml_stream(documents: Iterable[Mapping[str, Any]]) -> str:
    """Several YAML documents separated by ``---``."""
    return "---\n" + "---\n".join(to_yaml(d) for d in documents)
