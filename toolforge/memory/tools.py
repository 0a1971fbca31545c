"""Graph memory for agents: three OpenAI-style tools and a dispatcher, plus run recording.

The agent loop offers ``MEMORY_TOOLS`` beside the registered tools and sends any call
whose name is in ``MEMORY_TOOL_NAMES`` to ``call_memory_tool``. Bad arguments from the
model (an unknown type, an edge to a missing node …) come back as ``{"error": message}``
so the model can correct itself; only an unknown tool name raises (a wiring mistake).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from toolforge.errors import NotFoundError, UsageError
from toolforge.memory.compress import event_kind, event_text
from toolforge.memory.models import EDGE_TYPES, Hit, Mode, NodeType

if TYPE_CHECKING:
    from toolforge.memory.store import Graph

_NODE_TYPES = [t.value for t in NodeType]


def _function(
    name: str, description: str, properties: dict[str, Any], required: list[str]
) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            },
        },
    }


MEMORY_TOOLS: list[dict[str, Any]] = [
    _function(
        "memory_add_node",
        "Store a fact in the shared knowledge graph (or update the node with the same type and label).",
        {
            "type": {"type": "string", "enum": _NODE_TYPES},
            "label": {"type": "string", "description": "short canonical name, unique per type"},
            "content": {"type": "string", "description": "what is known about it"},
            "meta": {"type": "object"},
        },
        ["type", "label"],
    ),
    _function(
        "memory_add_edge",
        "Relate two nodes of the knowledge graph, named by label or id.",
        {
            "from": {"type": ["string", "integer"]},
            "to": {"type": ["string", "integer"]},
            "type": {
                "type": "string",
                "description": "snake_case relation, e.g. " + ", ".join(EDGE_TYPES),
            },
            "weight": {"type": "number"},
        },
        ["from", "to", "type"],
    ),
    _function(
        "memory_query",
        "Search the knowledge graph: similarity (words), pattern (glob like 'parse_*' or /regex/), "
        "or traverse (from a node label/id, following edges up to radius hops).",
        {
            "text": {"type": "string"},
            "mode": {"type": "string", "enum": [m.value for m in Mode], "default": "similarity"},
            "type": {"type": "string", "enum": _NODE_TYPES},
            "limit": {"type": "integer", "minimum": 1, "maximum": 50},
            "radius": {"type": "integer", "minimum": 0, "maximum": 5},
            "edge_types": {"type": "array", "items": {"type": "string"}},
            "direction": {"type": "string", "enum": ["out", "in", "both"]},
        },
        ["text"],
    ),
]
MEMORY_TOOL_NAMES = frozenset(t["function"]["name"] for t in MEMORY_TOOLS)


def _brief(hit: Hit) -> dict[str, Any]:
    """A hit as an agent sees it: compact, content trimmed, relations by label."""
    out: dict[str, Any] = {
        "id": hit.node.id,
        "type": hit.node.type,
        "label": hit.node.label,
        "content": hit.node.content[:500],
    }
    if hit.score is not None:
        out["score"] = round(hit.score, 4)
    if hit.depth is not None:
        out["depth"] = hit.depth
    out["relations"] = [
        (f"-{r.type}-> {r.node_label}" if r.direction == "out" else f"<-{r.type}- {r.node_label}")
        for r in hit.relations
    ]
    return out


def _args(args: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(args, dict):
        raise UsageError("Arguments must be a JSON object")
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise UsageError(
            f"Unknown argument(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    return args


def call_memory_tool(graph: Graph, name: str, args: Any) -> dict[str, Any]:
    """Run one memory tool call; bad arguments give ``{"error": ...}``, never an exception."""
    if name not in MEMORY_TOOL_NAMES:
        raise NotFoundError(
            "memory tool", name, hint=f"Known: {', '.join(sorted(MEMORY_TOOL_NAMES))}"
        )
    spec = next(t["function"]["parameters"] for t in MEMORY_TOOLS if t["function"]["name"] == name)
    try:
        a = _args(args, set(spec["properties"]))
        missing = [k for k in spec["required"] if k not in a]
        if missing:
            raise UsageError(f"Missing argument(s): {', '.join(missing)}")
        if name == "memory_add_node":
            node, created = graph.add_node(
                a["type"], a["label"], a.get("content") or "", a.get("meta")
            )
            return {"id": node.id, "type": node.type, "label": node.label, "created": created}
        if name == "memory_add_edge":
            edge, created = graph.add_edge(a["from"], a["to"], a["type"], a.get("weight", 1.0))
            return {
                "id": edge.id,
                "from": edge.src,
                "to": edge.dst,
                "type": edge.type,
                "created": created,
            }
        hits = graph.query(
            a["text"],
            a.get("mode", "similarity"),
            type=a.get("type"),
            limit=a.get("limit"),
            radius=a.get("radius", 1),
            edge_types=a.get("edge_types"),
            direction=a.get("direction", "both"),
        )
        return {"results": [_brief(h) for h in hits]}
    except UsageError as e:
        return {"error": str(e)}


def record_events(graph: Graph, run_id: str, events: Sequence[dict[str, Any]]) -> list[int]:
    """Record a run's key events: a ``run RUN_ID`` event node, and one event node per event
    linked to it with ``part_of``. Re-recording the same run updates, never duplicates.
    Returns the node ids (run node first)."""
    with graph.store.write() as conn:
        run, _ = graph.add_node(
            NodeType.event,
            f"run {run_id}",
            f"{len(events)} key event(s)",
            {"run": run_id},
            conn=conn,
        )
        ids = [run.id]
        for index, event in enumerate(events):
            node, _ = graph.add_node(
                NodeType.event,
                f"run {run_id} #{index} {event_kind(event)[:40]}",
                event_text(event),
                {"run": run_id, "index": index},
                conn=conn,
            )
            graph.add_edge(node.id, run.id, "part_of", conn=conn)
            ids.append(node.id)
    return ids


__all__ = ["MEMORY_TOOLS", "MEMORY_TOOL_NAMES", "call_memory_tool", "record_events"]
