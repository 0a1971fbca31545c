"""The three ways to ask the graph: similarity, pattern and traverse.

* similarity — FTS5 full-text ranking (BM25, label weighted above content); with an
  embedder configured, fused with cosine similarity of stored vectors (``vectors.py``).
* pattern — a glob (``parse_*``) or a ``/regex/`` over labels and content, case-insensitive.
  A glob must match a whole label or a whole content; a regex may match anywhere.
  Patterns scan the graph's nodes inside SQLite (LIKE in C for globs; a registered
  REGEXP function for regexes and [classes]).
* traverse — breadth-first from one node to ``radius`` hops over chosen edge types, in a
  chosen direction; each hit carries its depth and the edge it was reached by.

Every filter narrows the hits: ``type`` (node type) and ``edge_types`` (hits must touch
such an edge; in traverse, only such edges are followed).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from toolforge.errors import UsageError
from toolforge.memory import models as m
from toolforge.memory.models import Direction, Edge, Hit, Mode
from toolforge.memory.store import node_from_row

if TYPE_CHECKING:
    from toolforge.memory.store import Graph

DEFAULT_LIMIT = 10
_WORD = re.compile(r"\w+", re.UNICODE)


def run_query(
    graph: Graph,
    text: str,
    mode: str | Mode = Mode.similarity,
    *,
    type: str | None = None,
    limit: int | None = None,
    radius: int = 1,
    edge_types: Sequence[str] | str | None = None,
    direction: str | Direction = Direction.both,
    relations: bool = True,
) -> list[Hit]:
    """Run one query; validate every option first so bad input fails before any work."""
    chosen = m.mode(mode)
    kind = m.node_type(type).value if type else None
    if isinstance(edge_types, str):
        edge_types = [edge_types]
    etypes = [m.edge_type(e) for e in (edge_types or [])]
    way = m.direction(direction)
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise UsageError(f"--limit must be a positive whole number, not {limit!r}")
    if not isinstance(radius, int) or radius < 0:
        raise UsageError(f"--radius must be 0 or more, not {radius!r}")
    if not isinstance(text, str) or not text.strip():
        raise UsageError(
            "The query text is empty: give words (similarity), a pattern, or a start node (traverse)"
        )
    if chosen is Mode.similarity:
        hits = similarity(graph, text, kind, etypes, limit or DEFAULT_LIMIT)
    elif chosen is Mode.pattern:
        hits = pattern(graph, text, kind, etypes, limit or DEFAULT_LIMIT)
    else:
        hits = traverse(graph, text, radius, etypes, way, kind, limit)
    if relations:
        for hit in hits:
            hit.relations = graph.relations(hit.node.id)
    return hits


def _filters(graph: Graph, kind: str | None, etypes: list[str]) -> tuple[str, list[Any]]:
    sql, params = " AND +n.graph = ?", [graph.name]  # unary +: scan the table, not the label index
    if kind:
        sql += " AND n.type = ?"
        params.append(kind)
    if etypes:
        marks = ",".join("?" * len(etypes))
        sql += (
            f" AND (EXISTS (SELECT 1 FROM memory_edges e WHERE e.src = n.id AND e.type IN ({marks}))"
            f" OR EXISTS (SELECT 1 FROM memory_edges e WHERE e.dst = n.id AND e.type IN ({marks})))"
        )
        params += etypes + etypes
    return sql, params


def fts_query(text: str) -> str:
    """Free text → an FTS5 query: every distinct word, quoted, OR-ed (BM25 rewards matching more)."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(text)))
    if not words:
        raise UsageError(f"The similarity query {text!r} has no words to search for")
    return " OR ".join(f'"{w}"' for w in words)


def bm25_hits(
    graph: Graph, text: str, kind: str | None, etypes: list[str], limit: int
) -> list[Hit]:
    where, params = _filters(graph, kind, etypes)
    rows = graph.store.rows(
        "SELECT n.*, bm25(memory_fts, 4.0, 1.0) AS rank FROM memory_fts"
        " JOIN memory_nodes n ON n.id = memory_fts.rowid"
        f" WHERE memory_fts MATCH ?{where} ORDER BY rank, n.id LIMIT ?",
        [fts_query(text), *params, limit],
    )
    hits = []
    for row in rows:
        score = -row["rank"]
        hits.append(Hit(node_from_row(row), score=score, scores={"bm25": score}))
    return hits


def similarity(
    graph: Graph, text: str, kind: str | None, etypes: list[str], limit: int
) -> list[Hit]:
    if graph.store.embedder is None:
        return bm25_hits(graph, text, kind, etypes, limit)
    from toolforge.memory.vectors import hybrid

    where, params = _filters(graph, kind, etypes)
    return hybrid(
        graph, text, bm25_hits(graph, text, kind, etypes, max(limit * 5, 50)), where, params, limit
    )


def glob_to_like(glob: str) -> str | None:
    """``parse_*`` → ``parse\\_%`` for SQL LIKE; None when the glob has a [class] LIKE cannot say."""
    if "[" in glob:
        return None
    out = []
    for ch in glob:
        if ch in "%_\\":
            out.append("\\" + ch)
        elif ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        else:
            out.append(ch)
    return "".join(out)


def glob_to_regex(glob: str) -> str:
    """A glob as an anchored regex (``[!x]`` negation as in fnmatch), for what LIKE cannot do."""
    import fnmatch

    return "^" + fnmatch.translate(glob)


def pattern(graph: Graph, text: str, kind: str | None, etypes: list[str], limit: int) -> list[Hit]:
    where, params = _filters(graph, kind, etypes)
    text = text.strip()
    if len(text) >= 2 and text.startswith("/") and text.endswith("/"):
        regex = text[1:-1]
        try:
            re.compile(regex)
        except re.error as e:
            raise UsageError(f"Bad regular expression {regex!r}: {e}") from None
        cond, args = "(n.label REGEXP ? OR n.content REGEXP ?)", [regex, regex]
    elif (like := glob_to_like(text)) is not None:
        cond, args = "(n.label LIKE ? ESCAPE '\\' OR n.content LIKE ? ESCAPE '\\')", [like, like]
    else:
        regex = glob_to_regex(text)
        cond, args = "(n.label REGEXP ? OR n.content REGEXP ?)", [regex, regex]
    rows = graph.store.rows(
        f"SELECT n.* FROM memory_nodes n WHERE {cond}{where} ORDER BY n.label COLLATE NOCASE, n.id LIMIT ?",
        [*args, *params, limit],
    )
    return [Hit(node_from_row(r)) for r in rows]


def traverse(
    graph: Graph,
    start_ref: str,
    radius: int,
    etypes: list[str],
    way: Direction,
    kind: str | None = None,
    limit: int | None = None,
) -> list[Hit]:
    """Breadth-first from ``start_ref``; each node is reported once, at its shortest depth."""
    start = graph.node(start_ref)
    reached: dict[int, tuple[int, Edge | None]] = {start.id: (0, None)}
    frontier = [start.id]
    for depth in range(1, radius + 1):
        if not frontier:
            break
        members = set(frontier)
        nxt: list[int] = []
        for edge in graph.edges_near(frontier, way, etypes):
            for here, there, allowed in ((edge.src, edge.dst, "out"), (edge.dst, edge.src, "in")):
                if here in members and way.value in (allowed, "both") and there not in reached:
                    reached[there] = (depth, edge)
                    nxt.append(there)
        frontier = nxt
    ids = list(reached)
    nodes = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        for row in graph.store.rows(
            f"SELECT * FROM memory_nodes WHERE id IN ({','.join('?' * len(chunk))})", chunk
        ):
            nodes[row["id"]] = node_from_row(row)
    hits = [Hit(nodes[i], depth=reached[i][0], via=reached[i][1]) for i in ids if i in nodes]
    if kind:
        hits = [h for h in hits if h.node.type == kind]
    hits.sort(key=lambda h: (h.depth, h.node.label.lower(), h.node.id))
    return hits[:limit] if limit else hits
