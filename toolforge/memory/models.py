"""The vocabulary of graph memory: node types, query modes, nodes, edges and query hits.

Kept apart from the store so the CLI, the agent tools and the Mermaid writer can share
the names without opening a database.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Annotated, Any

from pydantic import AfterValidator

from toolforge.errors import UsageError


class NodeType(str, Enum):
    entity = "entity"
    concept = "concept"
    code = "code"
    query = "query"
    answer = "answer"
    event = "event"


class Mode(str, Enum):
    similarity = "similarity"
    pattern = "pattern"
    traverse = "traverse"


class Direction(str, Enum):
    out = "out"
    in_ = "in"
    both = "both"


# Edge types are an open vocabulary (snake_case words); these are the well-known ones,
# offered to models in prompts and tool descriptions.
EDGE_TYPES = (
    "uses",
    "depends_on",
    "implements",
    "calls",
    "about",
    "part_of",
    "answers",
    "related_to",
)

_EDGE_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_GRAPH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_LABEL = 200


def _choices(enum: type[Enum]) -> str:
    return "|".join(str(m.value) for m in enum)  # type: ignore[attr-defined]


def node_type(value: str | NodeType) -> NodeType:
    try:
        return NodeType(value)
    except ValueError:
        raise UsageError(f"Unknown node type {value!r}: use one of {_choices(NodeType)}") from None


def mode(value: str | Mode) -> Mode:
    try:
        return Mode(value)
    except ValueError:
        raise UsageError(f"Unknown query mode {value!r}: use one of {_choices(Mode)}") from None


def direction(value: str | Direction) -> Direction:
    try:
        return Direction(value)
    except ValueError:
        raise UsageError(f"Unknown direction {value!r}: use one of {_choices(Direction)}") from None


def edge_type(value: str) -> str:
    if not isinstance(value, str) or not _EDGE_TYPE.match(value):
        raise UsageError(
            f"Bad edge type {value!r}: use a snake_case word such as {', '.join(EDGE_TYPES[:5])}"
        )
    return value


def _edge_type_field(value: str) -> str:
    try:
        return edge_type(value)
    except UsageError as e:  # pydantic collects it with the field path
        raise ValueError(e.message) from None


EdgeTypeField = Annotated[str, AfterValidator(_edge_type_field)]
"""An edge type in a pydantic model (import files, model extractions)."""


def graph_name(value: str) -> str:
    if not isinstance(value, str) or not _GRAPH_NAME.match(value):
        raise UsageError(
            f"Bad graph name {value!r}: use letters, digits, '_', '.', '-' (at most 64, starting with a letter or digit)"
        )
    return value


def label(value: str) -> str:
    text = " ".join(str(value).split()) if isinstance(value, str) else ""
    if not text:
        raise UsageError("A node needs a non-empty label")
    if len(text) > MAX_LABEL:
        raise UsageError(
            f"Label too long ({len(text)} characters, at most {MAX_LABEL}): put the detail in --content"
        )
    return text


@dataclass
class Node:
    id: int
    type: str
    label: str
    content: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    updated_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Edge:
    id: int
    src: int
    dst: int
    type: str
    weight: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Relation:
    """One edge seen from a node: ``direction`` out means node → other."""

    direction: str
    type: str
    weight: float
    node_id: int
    node_type: str
    node_label: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Hit:
    """A query result: the node, its score (similarity), depth and the edge it was reached by (traverse)."""

    node: Node
    score: float | None = None
    depth: int | None = None
    via: Edge | None = None
    relations: list[Relation] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.node.to_dict(),
            "score": self.score,
            "scores": self.scores,
            "depth": self.depth,
            "via": self.via.to_dict() if self.via else None,
            "relations": [r.to_dict() for r in self.relations],
        }


@dataclass
class GraphInfo:
    name: str
    nodes: int
    edges: int
    created_at: str
    by_type: dict[str, int] = field(default_factory=dict)
    edge_types: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
