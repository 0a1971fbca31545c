"""Graph ↔ JSON: export a whole graph; import one all-or-nothing.

The file::

    {"format": "toolforge-memory", "version": 1, "graph": "default",
     "nodes": [{"id": 1, "type": "entity", "label": "Redis", "content": "...", "meta": {}, ...}],
     "edges": [{"from": 1, "to": 2, "type": "uses", "weight": 1.0, "meta": {}}]}

Node ids in a file are keys local to the file; an edge end may also be a label (or
``TYPE:LABEL``) of a node in the file or already in the graph. Import validates the whole
document first and lists every problem; then one transaction upserts nodes (by type and
label) and edges, so a failure leaves the graph exactly as it was.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from toolforge.errors import NotFoundError, UsageError
from toolforge.memory import models as m
from toolforge.memory.models import Node

if TYPE_CHECKING:
    from toolforge.memory.store import Graph

FORMAT = "toolforge-memory"
VERSION = 1


class _NodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int | str | None = None
    type: m.NodeType
    label: str = Field(min_length=1, max_length=m.MAX_LABEL)
    content: str = ""
    meta: dict[str, Any] = Field(default_factory=dict)
    created_at: str | None = None
    updated_at: str | None = None


class _EdgeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    src: int | str = Field(alias="from")
    dst: int | str = Field(alias="to")
    type: m.EdgeTypeField
    weight: float = 1.0
    meta: dict[str, Any] = Field(default_factory=dict)
    created_at: str | None = None
    id: int | None = None


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str = FORMAT
    version: int = VERSION
    graph: str | None = None
    nodes: list[_NodeIn] = Field(default_factory=list)
    edges: list[_EdgeIn] = Field(default_factory=list)


@dataclass
class ImportResult:
    nodes_created: int = 0
    nodes_updated: int = 0
    edges_created: int = 0
    edges_updated: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def export_graph(graph: Graph) -> dict[str, Any]:
    """The whole graph as a JSON-ready document (nodes and edges ordered by id)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "graph": graph.name,
        "nodes": [n.to_dict() for n in graph.nodes()],
        "edges": [
            {
                "from": e.src,
                "to": e.dst,
                "type": e.type,
                "weight": e.weight,
                "meta": e.meta,
                "created_at": e.created_at,
            }
            for e in graph.edges()
        ],
    }


def write_export(graph: Graph, path: Path | str) -> dict[str, Any]:
    """Write the export atomically (temp file, then rename); return the document."""
    data = export_graph(graph)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return data


def read_import(path: Path | str) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFoundError("file", str(path)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"Cannot import {path}: not a JSON file ({e})") from None


def _parse(data: Any, source: str) -> _Document:
    try:
        doc = _Document.model_validate(data)
    except ValidationError as e:
        problems = [
            f"  {'.'.join(map(str, err['loc'])) or '<root>'}: {err['msg']}" for err in e.errors()
        ]
        raise UsageError(
            f"Cannot import {source}: {len(problems)} problem(s)\n" + "\n".join(problems)
        ) from None
    problems = []
    if doc.format != FORMAT:
        problems.append(f"  format: expected {FORMAT!r}, got {doc.format!r}")
    if doc.version != VERSION:
        problems.append(f"  version: expected {VERSION}, got {doc.version}")
    seen_ids: set[str] = set()
    seen_labels: set[tuple[str, str]] = set()
    for i, node in enumerate(doc.nodes):
        key = (node.type.value, " ".join(node.label.split()).lower())
        if not key[1]:
            problems.append(f"  nodes.{i}.label: is blank")
        if key in seen_labels:
            problems.append(f"  nodes.{i}: a second {node.type.value} labelled {node.label!r}")
        seen_labels.add(key)
        if node.id is not None:
            if str(node.id) in seen_ids:
                problems.append(f"  nodes.{i}.id: {node.id!r} is used twice")
            seen_ids.add(str(node.id))
    if problems:
        raise UsageError(
            f"Cannot import {source}: {len(problems)} problem(s)\n" + "\n".join(problems)
        )
    return doc


def import_graph(graph: Graph, data: Any, *, source: str = "data") -> ImportResult:
    """Validate ``data`` completely, then merge it into ``graph`` in one transaction."""
    doc = _parse(data, source)
    result = ImportResult()
    with graph.store.write() as conn:
        local: dict[str, Node] = {}
        for node in doc.nodes:
            saved, created = graph.add_node(
                node.type, node.label, node.content, node.meta, conn=conn
            )
            if node.created_at or node.updated_at:
                conn.execute(
                    "UPDATE memory_nodes SET created_at = coalesce(?, created_at), updated_at = coalesce(?, updated_at)"
                    " WHERE id = ?",
                    (node.created_at if created else None, node.updated_at, saved.id),
                )
            if node.id is not None:
                local[str(node.id)] = saved
            result.nodes_created += created
            result.nodes_updated += not created
        problems = []
        for i, edge in enumerate(doc.edges):
            ends: list[Node] = []
            for name, ref in (("from", edge.src), ("to", edge.dst)):
                if str(ref) in local:
                    ends.append(local[str(ref)])
                    continue
                try:
                    ends.append(graph._resolve(conn, ref))
                except UsageError as e:
                    problems.append(f"  edges.{i}.{name}: {e.message}")
            if len(ends) < 2:
                continue
            try:
                saved_edge, created = graph.add_edge(
                    ends[0], ends[1], edge.type, edge.weight, edge.meta, conn=conn
                )
            except UsageError as e:
                problems.append(f"  edges.{i}: {e.message}")
                continue
            if edge.created_at and created:
                conn.execute(
                    "UPDATE memory_edges SET created_at = ? WHERE id = ?",
                    (edge.created_at, saved_edge.id),
                )
            result.edges_created += created
            result.edges_updated += not created
        if problems:
            raise UsageError(
                f"Cannot import {source}: {len(problems)} problem(s); nothing was imported\n"
                + "\n".join(problems)
            )
    return result
