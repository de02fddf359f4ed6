"""The application graph: building it with networkx and rendering it as Mermaid or DOT."""

from __future__ import annotations

import re
from typing import Any

import networkx as nx

from blueprint.declarations import BlueprintDecl

__all__ = ["build_graph", "find_cycles", "to_dot", "to_mermaid"]

MAX_CYCLES = 10


def build_graph(decl: BlueprintDecl) -> nx.DiGraph[Any]:
    """The bipartite graph of streamlets and topics (see :class:`VerifiedBlueprint`)."""
    graph: nx.DiGraph[Any] = nx.DiGraph(name=decl.name)
    for name, sdecl in decl.streamlets.items():
        graph.add_node(("streamlet", name), kind="streamlet", replicas=sdecl.replicas)
    for key, topic in decl.topics.items():
        graph.add_node(("topic", key), kind="topic", kafka_name=topic.name, codec=topic.codec)
        for ref, _ in topic.producers:
            if ref.streamlet in decl.streamlets:
                graph.add_edge(("streamlet", ref.streamlet), ("topic", key), port=ref.port)
        for ref, _ in topic.consumers:
            if ref.streamlet in decl.streamlets:
                graph.add_edge(("topic", key), ("streamlet", ref.streamlet), port=ref.port)
    return graph


def find_cycles(graph: nx.DiGraph[Any]) -> list[list[str]]:
    """Cycles between streamlets (through topics), as lists of streamlet names."""
    streamlet_graph: nx.DiGraph[str] = nx.DiGraph()
    for node, data in graph.nodes(data=True):
        if data.get("kind") == "streamlet":
            streamlet_graph.add_node(node[1])
    for topic, data in graph.nodes(data=True):
        if data.get("kind") != "topic":
            continue
        for producer in graph.predecessors(topic):
            for consumer in graph.successors(topic):
                streamlet_graph.add_edge(producer[1], consumer[1])
    cycles: list[list[str]] = []
    for cycle in nx.simple_cycles(streamlet_graph):
        cycles.append(list(cycle))
        if len(cycles) >= MAX_CYCLES:
            break
    return cycles


def _ident(node: tuple[str, str]) -> str:
    kind, name = node
    return ("s_" if kind == "streamlet" else "t_") + re.sub(r"[^A-Za-z0-9_]", "_", name)


def _label(text: str) -> str:
    return text.replace('"', "#quot;")


def to_mermaid(graph: nx.DiGraph[Any], classes: dict[str, str] | None = None) -> str:
    """The graph as a Mermaid flowchart (streamlets as boxes, topics as stadiums)."""
    lines = ["flowchart LR"]
    for node, data in graph.nodes(data=True):
        kind, name = node
        if kind == "streamlet":
            extra = f"<br/><small>{classes[name]}</small>" if classes and name in classes else ""
            reps = data.get("replicas", 1)
            times = f" x{reps}" if reps and reps > 1 else ""
            lines.append(f'    {_ident(node)}["{_label(name)}{times}{extra}"]')
        else:
            lines.append(f'    {_ident(node)}(["{_label(data.get("kafka_name", name))}"])')
    for src, dst, data in graph.edges(data=True):
        lines.append(f'    {_ident(src)} -- "{_label(data.get("port", ""))}" --> {_ident(dst)}')
    return "\n".join(lines) + "\n"


def _dot_quote(text: Any) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph: nx.DiGraph[Any], classes: dict[str, str] | None = None) -> str:
    """The graph in Graphviz DOT (streamlets as boxes, topics as ellipses)."""
    lines = [f"digraph {_dot_quote(graph.graph.get('name') or 'blueprint')} {{", "  rankdir=LR;"]
    for node, data in graph.nodes(data=True):
        kind, name = node
        if kind == "streamlet":
            label = name
            if classes and name in classes:
                label += f"\\n{classes[name]}"
            reps = data.get("replicas", 1)
            if reps and reps > 1:
                label += f" x{reps}"
            lines.append(f"  {_ident(node)} [shape=box, style=rounded, label={_dot_quote(label)}];")
        else:
            label = data.get("kafka_name", name)
            lines.append(f"  {_ident(node)} [shape=ellipse, label={_dot_quote(label)}];")
    for src, dst, data in graph.edges(data=True):
        lines.append(
            f"  {_ident(src)} -> {_ident(dst)} [label={_dot_quote(data.get('port', ''))}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"
