"""Layout of a workflow's DAG for a small inline SVG: a column per depth."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

NODE_WIDTH = 160
NODE_HEIGHT = 40
COLUMN_GAP = 50
ROW_GAP = 20
MARGIN = 10
LABEL_CHARS = 22


@dataclass(frozen=True)
class Node:
    id: int
    label: str
    x: int
    y: int


@dataclass(frozen=True)
class Edge:
    x1: int
    y1: int
    x2: int
    y2: int


@dataclass(frozen=True)
class Layout:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def layout(nodes: Sequence[tuple[int, str]], edges: Sequence[tuple[int, int]]) -> Layout:
    """Place ``(id, label)`` nodes: a node's column is its longest path from a root;
    rows keep creation order. Edges naming unknown nodes are left out."""
    known = {node_id for node_id, _ in nodes}
    edges = [(a, b) for a, b in edges if a in known and b in known]
    sources: dict[int, list[int]] = {node_id: [] for node_id in known}
    for a, b in edges:
        sources[b].append(a)
    depth: dict[int, int] = {}

    def depth_of(node_id: int, seen: frozenset[int] = frozenset()) -> int:
        if node_id not in depth:
            upstream = [s for s in sources[node_id] if s not in seen]  # a DAG; guard anyway
            depth[node_id] = 1 + max((depth_of(s, seen | {node_id}) for s in upstream), default=-1)
        return depth[node_id]

    rows: dict[int, int] = {}
    placed: list[Node] = []
    for node_id, label in nodes:
        column = depth_of(node_id)
        row = rows.get(column, 0)
        rows[column] = row + 1
        placed.append(
            Node(
                id=node_id,
                label=_short(label),
                x=MARGIN + column * (NODE_WIDTH + COLUMN_GAP),
                y=MARGIN + row * (NODE_HEIGHT + ROW_GAP),
            )
        )
    at = {node.id: node for node in placed}
    lines = [
        Edge(
            x1=at[a].x + NODE_WIDTH,
            y1=at[a].y + NODE_HEIGHT // 2,
            x2=at[b].x,
            y2=at[b].y + NODE_HEIGHT // 2,
        )
        for a, b in edges
    ]
    columns = 1 + max(depth.values(), default=0)
    tallest = max(rows.values(), default=1)
    return Layout(
        nodes=placed,
        edges=lines,
        width=2 * MARGIN + columns * NODE_WIDTH + (columns - 1) * COLUMN_GAP,
        height=2 * MARGIN + tallest * NODE_HEIGHT + (tallest - 1) * ROW_GAP,
    )
