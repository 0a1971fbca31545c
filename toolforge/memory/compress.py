"""Session compression: turn a run's events into graph knowledge, keep only what was asked.

Events (from a coordinator run trace, or a JSONL file with one JSON object per line) are
shown to the model in numbered chunks; for each chunk it answers with nodes and edges
(validated with pydantic and re-asked on bad output, through ``ask_structured``). The
answers are merged into the graph in one transaction, deduplicated by label
(case-insensitive; a label already in the graph is merged into that node, whatever its
type). Events marked ``"retain": true``, or whose kind is in ``retain_kinds``, are kept
verbatim as ``event`` nodes linked (``about``) to the nodes extracted from them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from toolforge.errors import NotFoundError, ToolforgeError, UsageError
from toolforge.memory import models as m
from toolforge.memory.models import EDGE_TYPES, NodeType
from toolforge.memory.store import now

if TYPE_CHECKING:
    from toolforge.config import Settings
    from toolforge.llm.base import LLM
    from toolforge.memory.store import Graph

CHUNK_CHARS = 12_000
EVENT_CHARS = 2_000
MAX_CONTENT = 4_000


class ExtractedNode(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: NodeType
    label: str = Field(min_length=1, max_length=m.MAX_LABEL, description="short unique name")
    content: str = Field("", description="what was learned about it, in one or two sentences")
    events: list[int] = Field(
        default_factory=list, description="numbers of the events it comes from"
    )


class ExtractedEdge(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    src: str = Field(alias="from", description="label of a node")
    dst: str = Field(alias="to", description="label of a node")
    type: m.EdgeTypeField = Field(description="snake_case relation, e.g. " + ", ".join(EDGE_TYPES))
    weight: float = 1.0


class Extraction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nodes: list[ExtractedNode] = Field(default_factory=list)
    edges: list[ExtractedEdge] = Field(default_factory=list)


@dataclass
class CompressResult:
    source: str
    events: int
    chunks: int = 0
    nodes_created: list[str] = field(default_factory=list)
    nodes_merged: list[str] = field(default_factory=list)
    edges_created: int = 0
    edges_dropped: list[str] = field(default_factory=list)
    events_retained: list[int] = field(default_factory=list)
    attempts: int = 0
    tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- events ------------------------------------------------------------------------------
def event_kind(event: dict[str, Any]) -> str:
    return str(event.get("kind") or event.get("type") or event.get("event") or "event")


_BODY_KEYS = ("content", "text", "message", "summary", "output", "result", "answer")
_NOISE_KEYS = {
    "kind",
    "type",
    "event",
    "agent",
    "retain",
    "seq",
    "ts",
    "time",
    "input",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "latency_ms",
}


def event_text(event: dict[str, Any]) -> str:
    """One line of readable text for an event of any shape (a run-trace event or a JSONL line)."""
    body = next((event[k] for k in _BODY_KEYS if event.get(k) not in (None, "", [], {})), None)
    if body is None:
        body = {k: v for k, v in event.items() if k not in _NOISE_KEYS}
    if not isinstance(body, str):
        body = json.dumps(body, ensure_ascii=False, default=str, sort_keys=True)
    agent = event.get("agent")
    return f"{event_kind(event)}" + (f" ({agent})" if agent else "") + f": {body}"


def read_jsonl(path: Path | str) -> list[dict[str, Any]]:
    """Events from a JSONL file; every bad line is reported at once."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise NotFoundError("file", str(path)) from None
    except UnicodeDecodeError as e:
        raise UsageError(f"Cannot read {path}: not UTF-8 text ({e})") from None
    events, problems = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"  line {number}: not JSON ({e.msg})")
            continue
        if not isinstance(value, dict):
            problems.append(f"  line {number}: expected a JSON object, got {type(value).__name__}")
            continue
        events.append(value)
    if problems:
        raise UsageError(
            f"Cannot read events from {path}: {len(problems)} bad line(s)\n" + "\n".join(problems)
        )
    return events


def load_events(
    settings: Settings, *, run_id: str | None = None, path: Path | str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """(source name, events) from a run trace (agents store) or a JSONL file — exactly one of them."""
    if (run_id is None) == (path is None):
        raise UsageError("Give exactly one of --run RUN_ID or --events FILE.jsonl")
    if path is not None:
        return Path(path).stem, read_jsonl(path)
    try:
        from toolforge.agents.store import load_run_events
    except ImportError as e:
        raise ToolforgeError(
            f"Run traces cannot be read here ({e})",
            hint="Export the run's events as JSONL and use --events FILE.",
        ) from None
    return str(run_id), list(load_run_events(settings, str(run_id)))


# -- model -------------------------------------------------------------------------------
SYSTEM = """You maintain a knowledge graph that agents consult instead of re-reading old transcripts.
From the numbered events of an agent session, extract the lasting knowledge: entities, concepts,
code (functions, files, tools), questions asked (type query) and their answers (type answer),
and important events. Use short, canonical labels (reuse the exact same label for the same thing)
and put the detail in content. Relate nodes with edges whose "from"/"to" are node labels and whose
type is a snake_case relation such as {edge_types}. Leave out chatter and anything not worth keeping.
Answer with one JSON object: {{"nodes": [{{"type": ..., "label": ..., "content": ..., "events": [numbers]}}],
"edges": [{{"from": label, "to": label, "type": ..., "weight": 1.0}}]}}. Node types: {node_types}."""


def chunks(
    events: Sequence[dict[str, Any]], limit: int = CHUNK_CHARS
) -> list[list[tuple[int, str]]]:
    """Numbered event lines grouped so each group stays under ``limit`` characters."""
    out: list[list[tuple[int, str]]] = []
    size = 0
    for index, event in enumerate(events):
        text = event_text(event)
        if len(text) > EVENT_CHARS:
            text = text[: EVENT_CHARS - 1] + "…"
        if not out or size + len(text) > limit:
            out.append([])
            size = 0
        out[-1].append((index, text))
        size += len(text) + 8
    return out


def extract(
    llm: LLM, group: list[tuple[int, str]], source: str, *, attempts: int = 3
) -> tuple[Extraction, int, int]:
    """Ask the model for the nodes and edges in one chunk: (extraction, attempts, tokens)."""
    from toolforge.llm.structured import ask_structured

    system = SYSTEM.format(
        edge_types=", ".join(EDGE_TYPES), node_types=", ".join(t.value for t in NodeType)
    )
    lines = "\n".join(f"[{i}] {text}" for i, text in group)
    messages = [
        {"role": "system", "content": system},
        {
            "role": "user",
            "content": f"Session {source}, events {group[0][0]}–{group[-1][0]}:\n{lines}",
        },
    ]
    answer = ask_structured(llm, messages, Extraction, attempts=attempts, temperature=0.0, seed=0)
    return answer.value, answer.attempts, answer.usage.total_tokens


# -- merge -------------------------------------------------------------------------------
def _merge_content(old: str, new: str) -> str:
    new = new.strip()
    if not new or new.lower() in old.lower():
        return old
    return (f"{old}\n{new}" if old else new)[:MAX_CONTENT]


def _find_label(conn: sqlite3.Connection, graph: str, label: str) -> sqlite3.Row | None:
    return conn.execute(
        "SELECT id, content FROM memory_nodes WHERE graph = ? AND label = ? ORDER BY id LIMIT 1",
        (graph, label),
    ).fetchone()


def merge(
    graph: Graph,
    extractions: Sequence[Extraction],
    events: Sequence[dict[str, Any]],
    result: CompressResult,
    retain: Sequence[int],
) -> CompressResult:
    """Merge every extraction into ``graph`` (dedup by label) and keep the retained events; one transaction."""
    with graph.store.write() as conn:
        ids: dict[str, int] = {}
        sources: dict[int, set[int]] = {}
        for extraction in extractions:
            for node in extraction.nodes:
                text = m.label(node.label)
                key = text.lower()
                if key not in ids:
                    row = _find_label(conn, graph.name, text)
                    if row is None:
                        saved, _ = graph.add_node(
                            node.type,
                            text,
                            node.content.strip(),
                            {"source": result.source},
                            conn=conn,
                        )
                        ids[key] = saved.id
                        result.nodes_created.append(text)
                        sources.setdefault(saved.id, set()).update(node.events)
                        continue
                    ids[key] = row["id"]
                result.nodes_merged.append(text)
                row = conn.execute(
                    "SELECT content FROM memory_nodes WHERE id = ?", (ids[key],)
                ).fetchone()
                merged = _merge_content(row["content"], node.content)
                if merged != row["content"]:
                    conn.execute(
                        "UPDATE memory_nodes SET content = ?, updated_at = ? WHERE id = ?",
                        (merged, now(), ids[key]),
                    )
                sources.setdefault(ids[key], set()).update(node.events)
        for extraction in extractions:
            for edge in extraction.edges:
                a, b = (_label_id(conn, graph.name, ids, x) for x in (edge.src, edge.dst))
                if a is None or b is None or a == b:
                    result.edges_dropped.append(f"{edge.src} -{edge.type}-> {edge.dst}")
                    continue
                _, created = graph.add_edge(a, b, edge.type, edge.weight, conn=conn)
                result.edges_created += created
        for index in retain:
            event = events[index]
            saved, _ = graph.add_node(
                NodeType.event,
                f"{result.source} #{index} {event_kind(event)}",
                event_text(event),
                {"source": result.source, "index": index, "event": event},
                conn=conn,
            )
            result.events_retained.append(index)
            for node_id, from_events in sorted(sources.items()):
                if index in from_events and node_id != saved.id:
                    graph.add_edge(saved.id, node_id, "about", conn=conn)
    return result


def _label_id(conn: sqlite3.Connection, graph: str, ids: dict[str, int], label: str) -> int | None:
    """The node a model's edge names: one extracted now, else one already in the graph."""
    text = " ".join(label.split())
    if text.lower() in ids:
        return ids[text.lower()]
    row = _find_label(conn, graph, text)
    return None if row is None else int(row["id"])


def compress_events(
    graph: Graph,
    llm: LLM,
    events: Sequence[dict[str, Any]],
    *,
    source: str,
    retain_kinds: Sequence[str] = (),
    attempts: int = 3,
    chunk_chars: int = CHUNK_CHARS,
    progress: Callable[[int, int], None] | None = None,
) -> CompressResult:
    """Extract knowledge from ``events`` with ``llm`` and merge it into ``graph``.

    Nothing is written unless every chunk got a valid answer (an LLMError propagates).
    """
    if not events:
        raise UsageError(f"No events to compress in {source}")
    retain = [
        i
        for i, e in enumerate(events)
        if e.get("retain") is True or event_kind(e) in set(retain_kinds)
    ]
    groups = chunks(events, chunk_chars)
    result = CompressResult(source=source, events=len(events), chunks=len(groups))
    extractions = []
    for number, group in enumerate(groups, start=1):
        if progress:
            progress(number, len(groups))
        extraction, tries, tokens = extract(llm, group, source, attempts=attempts)
        extractions.append(extraction)
        result.attempts += tries
        result.tokens += tokens
    return merge(graph, extractions, events, result, retain)
