"""Where the live view draws each streamlet and topic: the blueprint's graph laid out left
to right in layers, as ``flow graph`` draws it (Graphviz's ``rankdir=LR``), without
Graphviz.

Each node's layer is the longest path to it from a node without inputs (edges that close a
cycle are left out of that count), so every edge points right; within a layer the nodes
are ordered by the mean position of their neighbours, a few sweeps each way, which keeps
most edges from crossing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import networkx as nx

__all__ = ["Box", "Layout", "layout"]

Node = tuple[str, str]

#: Sizes (pixels) of a streamlet's box and a topic's pill, and the gaps between them.
STREAMLET_SIZE = (190, 100)
TOPIC_SIZE = (160, 48)
LAYER_GAP = 70
ROW_GAP = 28
MARGIN = 20
SWEEPS = 4


@dataclass(frozen=True, slots=True)
class Box:
    """A node's place: left, top, width, height (pixels)."""

    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True, slots=True)
class Layout:
    """Every node's box and the size of the whole drawing."""

    boxes: dict[Node, Box]
    width: int
    height: int


def _acyclic(graph: nx.DiGraph[Any]) -> nx.DiGraph[Any]:
    """``graph`` without the edges that close a cycle (found depth first, in node order)."""
    dag: nx.DiGraph[Any] = nx.DiGraph()
    dag.add_nodes_from(graph.nodes)
    state: dict[Node, int] = {}  # 1: on the path, 2: finished
    for root in graph.nodes:
        if root in state:
            continue
        stack = [(root, iter(graph.successors(root)))]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                continue
            if state.get(child) == 1:
                continue  # a back edge: it closes a cycle
            dag.add_edge(node, child)
            if child not in state:
                state[child] = 1
                stack.append((child, iter(graph.successors(child))))
    return dag


def _layers(graph: nx.DiGraph[Any]) -> list[list[Node]]:
    dag = _acyclic(graph)
    rank: dict[Node, int] = {}
    for node in nx.topological_sort(dag):
        rank[node] = max((rank[p] + 1 for p in dag.predecessors(node)), default=0)
    layers: list[list[Node]] = [[] for _ in range(max(rank.values(), default=-1) + 1)]
    for node in graph.nodes:  # the blueprint's order first
        layers[rank[node]].append(node)
    return layers


def _order(graph: nx.DiGraph[Any], layers: list[list[Node]]) -> None:
    """Reorder each layer (in place) by the mean position of its neighbours."""
    position = {node: i for layer in layers for i, node in enumerate(layer)}
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        sequence = layers[1:] if downward else list(reversed(layers[:-1]))
        for layer in sequence:

            def weight(node: Node, down: bool = downward) -> float:
                near = graph.predecessors(node) if down else graph.successors(node)
                places = [position[n] for n in near if n in position]
                return sum(places) / len(places) if places else position[node]

            layer.sort(key=weight)
            for i, node in enumerate(layer):
                position[node] = i


def layout(graph: nx.DiGraph[Any]) -> Layout:
    """The boxes of ``graph``'s nodes (``("streamlet", name)``, ``("topic", key)``)."""
    layers = _layers(graph)
    _order(graph, layers)

    def size(node: Node) -> tuple[int, int]:
        return STREAMLET_SIZE if node[0] == "streamlet" else TOPIC_SIZE

    heights = [
        sum(size(n)[1] for n in layer) + ROW_GAP * max(len(layer) - 1, 0) for layer in layers
    ]
    tallest = max(heights, default=0)
    boxes: dict[Node, Box] = {}
    x = MARGIN
    for layer, height in zip(layers, heights, strict=True):
        width = max(size(n)[0] for n in layer)
        y = MARGIN + (tallest - height) // 2
        for node in layer:
            w, h = size(node)
            boxes[node] = Box(x + (width - w) // 2, y, w, h)
            y += h + ROW_GAP
        x += width + LAYER_GAP
    return Layout(boxes, max(x - LAYER_GAP + MARGIN, 2 * MARGIN), tallest + 2 * MARGIN)
