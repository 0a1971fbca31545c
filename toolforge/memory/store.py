"""The graph store: nodes and edges of every named graph in one SQLite file.

One ``MemoryStore`` owns the connection (WAL, so several processes may write: each write
is one ``BEGIN IMMEDIATE`` transaction) and hands out ``Graph`` views, one per namespace.
Labels are unique per (graph, type), compared case-insensitively, so edges and commands
may name a node by id, by label, or by ``TYPE:LABEL`` when a label is used by two types.
An FTS5 index over label and content is kept in step by triggers; queries live in
``query.py``, JSON transfer in ``transfer.py``.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from toolforge import db
from toolforge.errors import NotFoundError, UsageError
from toolforge.memory import models as m
from toolforge.memory.models import Direction, Edge, GraphInfo, Hit, Node, NodeType, Relation

Embedder = Callable[[list[str]], list[list[float]]]

MIGRATIONS = [
    """
    CREATE TABLE memory_graphs (
        name TEXT PRIMARY KEY,
        created_at TEXT NOT NULL
    );
    CREATE TABLE memory_nodes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        graph TEXT NOT NULL REFERENCES memory_graphs(name) ON DELETE CASCADE,
        type TEXT NOT NULL,
        label TEXT NOT NULL COLLATE NOCASE,
        content TEXT NOT NULL DEFAULT '',
        meta TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (graph, type, label)
    );
    CREATE INDEX memory_nodes_label ON memory_nodes (graph, label);
    CREATE TABLE memory_edges (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        graph TEXT NOT NULL,
        src INTEGER NOT NULL REFERENCES memory_nodes(id) ON DELETE CASCADE,
        dst INTEGER NOT NULL REFERENCES memory_nodes(id) ON DELETE CASCADE,
        type TEXT NOT NULL,
        weight REAL NOT NULL DEFAULT 1.0,
        meta TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        UNIQUE (src, type, dst)
    );
    CREATE INDEX memory_edges_dst ON memory_edges (dst, type);
    CREATE INDEX memory_edges_graph ON memory_edges (graph, type);
    CREATE VIRTUAL TABLE memory_fts USING fts5(
        label, content, content='memory_nodes', content_rowid='id',
        tokenize='porter unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER memory_nodes_ai AFTER INSERT ON memory_nodes BEGIN
        INSERT INTO memory_fts (rowid, label, content) VALUES (new.id, new.label, new.content);
    END;
    CREATE TRIGGER memory_nodes_ad AFTER DELETE ON memory_nodes BEGIN
        INSERT INTO memory_fts (memory_fts, rowid, label, content) VALUES ('delete', old.id, old.label, old.content);
    END;
    CREATE TRIGGER memory_nodes_au AFTER UPDATE OF label, content ON memory_nodes BEGIN
        INSERT INTO memory_fts (memory_fts, rowid, label, content) VALUES ('delete', old.id, old.label, old.content);
        INSERT INTO memory_fts (rowid, label, content) VALUES (new.id, new.label, new.content);
    END;
    CREATE TABLE memory_vectors (
        node_id INTEGER PRIMARY KEY REFERENCES memory_nodes(id) ON DELETE CASCADE,
        model TEXT NOT NULL,
        vec BLOB NOT NULL
    );
    CREATE TRIGGER memory_nodes_au_vec AFTER UPDATE OF label, content ON memory_nodes BEGIN
        DELETE FROM memory_vectors WHERE node_id = new.id;
    END;
    """,
]

MAX_RELATIONS = 20  # relations attached to each query hit


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _regexp(pattern: str, value: str | None) -> bool:
    return value is not None and _compiled(pattern).search(value) is not None


class MemoryStore:
    """The memory database: a connection shared by the ``Graph`` views it hands out."""

    def __init__(
        self, path: Path | str, *, embedder: Embedder | None = None, embed_model: str = ""
    ) -> None:
        self.path = Path(path)
        self.embedder = embedder
        self.embed_model = embed_model
        self.conn = db.connect(self.path)
        self.conn.create_function("regexp", 2, _regexp, deterministic=True)
        db.migrate(self.conn, "memory", MIGRATIONS)
        self.lock = threading.RLock()

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One all-or-nothing write transaction (taken at once, so writers queue, never deadlock)."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    # -- graphs ---------------------------------------------------------------------
    def graph(self, name: str = "default", *, create: bool = True) -> Graph:
        """The graph ``name``. It is recorded with its first write, so merely opening one (or a
        failed import into one) leaves no trace; with ``create=False`` a graph that was never
        written is a NotFoundError, except ``default``, which always reads as a (maybe empty) graph."""
        m.graph_name(name)
        if (
            not create
            and name != "default"
            and not self.rows("SELECT 1 FROM memory_graphs WHERE name = ?", (name,))
        ):
            raise NotFoundError("graph", name, hint="List the graphs with: toolforge memory graphs")
        return Graph(self, name)

    def graphs(self) -> list[GraphInfo]:
        return [
            Graph(self, r["name"]).info()
            for r in self.rows("SELECT name FROM memory_graphs ORDER BY name")
        ]

    def drop(self, name: str) -> GraphInfo:
        """Delete a graph with all its nodes and edges."""
        info = self.graph(name, create=False).info()
        with self.write() as conn:
            conn.execute("DELETE FROM memory_edges WHERE graph = ?", (name,))
            conn.execute("DELETE FROM memory_nodes WHERE graph = ?", (name,))
            conn.execute("DELETE FROM memory_graphs WHERE name = ?", (name,))
        return info


def node_from_row(row: sqlite3.Row) -> Node:
    return Node(
        id=row["id"],
        type=row["type"],
        label=row["label"],
        content=row["content"],
        meta=json.loads(row["meta"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def edge_from_row(row: sqlite3.Row) -> Edge:
    return Edge(
        id=row["id"],
        src=row["src"],
        dst=row["dst"],
        type=row["type"],
        weight=row["weight"],
        meta=json.loads(row["meta"]),
        created_at=row["created_at"],
    )


def _meta(meta: dict[str, Any] | None) -> dict[str, Any]:
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise UsageError('Metadata must be a JSON object, e.g. \'{"source": "docs"}\'')
    return meta


class Graph:
    """One named graph: add, find and remove nodes and edges, and query them."""

    def __init__(self, store: MemoryStore, name: str) -> None:
        self.store = store
        self.name = name

    def __repr__(self) -> str:
        return f"Graph({self.name!r})"

    # -- nodes ----------------------------------------------------------------------
    def add_node(
        self,
        type: str | NodeType,
        label: str,
        content: str = "",
        meta: dict[str, Any] | None = None,
        *,
        conn: sqlite3.Connection | None = None,
    ) -> tuple[Node, bool]:
        """Add a node, or update the node with this type and label; return (node, created).

        On update, non-empty ``content`` replaces the old content and ``meta`` is merged in.
        """
        kind = m.node_type(type).value
        text = m.label(label)
        meta = _meta(meta)
        if not isinstance(content, str):
            raise UsageError("Node content must be text")
        if conn is None:
            with self.store.write() as c:
                return self.add_node(kind, text, content, meta, conn=c)
        conn.execute(
            "INSERT OR IGNORE INTO memory_graphs (name, created_at) VALUES (?, ?)",
            (self.name, now()),
        )
        row = conn.execute(
            "SELECT * FROM memory_nodes WHERE graph = ? AND type = ? AND label = ?",
            (self.name, kind, text),
        ).fetchone()
        stamp = now()
        if row is None:
            cur = conn.execute(
                "INSERT INTO memory_nodes (graph, type, label, content, meta, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?)",
                (self.name, kind, text, content, json.dumps(meta, sort_keys=True), stamp, stamp),
            )
            return Node(int(cur.lastrowid or 0), kind, text, content, meta, stamp, stamp), True
        merged = {**json.loads(row["meta"]), **meta}
        conn.execute(
            "UPDATE memory_nodes SET content = ?, meta = ?, updated_at = ? WHERE id = ?",
            (content or row["content"], json.dumps(merged, sort_keys=True), stamp, row["id"]),
        )
        return node_from_row(
            conn.execute("SELECT * FROM memory_nodes WHERE id = ?", (row["id"],)).fetchone()
        ), False

    def node(self, ref: int | str) -> Node:
        """The node named by id, label, or ``TYPE:LABEL``."""
        with self.store.lock:
            return self._resolve(self.store.conn, ref)

    def _resolve(self, conn: sqlite3.Connection, ref: int | str) -> Node:
        text = str(ref).strip()
        if isinstance(ref, int) or text.isdigit():
            row = conn.execute(
                "SELECT * FROM memory_nodes WHERE graph = ? AND id = ?", (self.name, int(text))
            ).fetchone()
            if row is not None:
                return node_from_row(row)
        kind, sep, rest = text.partition(":")
        if sep and kind in NodeType.__members__:
            row = conn.execute(
                "SELECT * FROM memory_nodes WHERE graph = ? AND type = ? AND label = ?",
                (self.name, kind, rest.strip()),
            ).fetchone()
            if row is not None:
                return node_from_row(row)
        rows = conn.execute(
            "SELECT * FROM memory_nodes WHERE graph = ? AND label = ? ORDER BY id",
            (self.name, text),
        ).fetchall()
        if len(rows) == 1:
            return node_from_row(rows[0])
        if len(rows) > 1:
            kinds = ", ".join(f"{r['type']}:{r['label']} (id {r['id']})" for r in rows)
            raise UsageError(
                f"The label {text!r} names {len(rows)} nodes: {kinds}. Name one by id or TYPE:LABEL"
            )
        raise NotFoundError(
            "node",
            text,
            hint=f"No node with that id or label in graph {self.name!r}; find one with: toolforge memory query",
        )

    def remove_node(self, ref: int | str) -> Node:
        """Delete a node and every edge touching it."""
        with self.store.write() as conn:
            node = self._resolve(conn, ref)
            conn.execute("DELETE FROM memory_nodes WHERE id = ?", (node.id,))
        return node

    def nodes(self, type: str | NodeType | None = None) -> list[Node]:
        sql, params = "SELECT * FROM memory_nodes WHERE graph = ?", [self.name]
        if type is not None:
            sql += " AND type = ?"
            params.append(m.node_type(type).value)
        return [node_from_row(r) for r in self.store.rows(sql + " ORDER BY id", params)]

    # -- edges ----------------------------------------------------------------------
    def add_edge(
        self,
        src: int | str | Node,
        dst: int | str | Node,
        type: str,
        weight: float = 1.0,
        meta: dict[str, Any] | None = None,
        *,
        conn: sqlite3.Connection | None = None,
    ) -> tuple[Edge, bool]:
        """Add (or re-weight) the edge ``src -type-> dst``; both ends must exist. Return (edge, created)."""
        kind = m.edge_type(type)
        meta = _meta(meta)
        try:
            weight = float(weight)
        except (TypeError, ValueError):
            raise UsageError(f"Edge weight must be a number, not {weight!r}") from None
        if conn is None:
            with self.store.write() as c:
                return self.add_edge(src, dst, kind, weight, meta, conn=c)
        a = self._edge_end(conn, src, "from")
        b = self._edge_end(conn, dst, "to")
        if a.id == b.id:
            raise UsageError(f"An edge needs two different nodes; both ends are {a.label!r}")
        row = conn.execute(
            "SELECT * FROM memory_edges WHERE src = ? AND type = ? AND dst = ?", (a.id, kind, b.id)
        ).fetchone()
        if row is None:
            stamp = now()
            cur = conn.execute(
                "INSERT INTO memory_edges (graph, src, dst, type, weight, meta, created_at) VALUES (?,?,?,?,?,?,?)",
                (self.name, a.id, b.id, kind, weight, json.dumps(meta, sort_keys=True), stamp),
            )
            return Edge(int(cur.lastrowid or 0), a.id, b.id, kind, weight, meta, stamp), True
        merged = {**json.loads(row["meta"]), **meta}
        conn.execute(
            "UPDATE memory_edges SET weight = ?, meta = ? WHERE id = ?",
            (weight, json.dumps(merged, sort_keys=True), row["id"]),
        )
        return edge_from_row(
            conn.execute("SELECT * FROM memory_edges WHERE id = ?", (row["id"],)).fetchone()
        ), False

    def _edge_end(self, conn: sqlite3.Connection, ref: int | str | Node, end: str) -> Node:
        if isinstance(ref, Node):  # already resolved in this transaction (bulk import)
            return ref
        try:
            return self._resolve(conn, ref)
        except NotFoundError:
            raise NotFoundError(
                "node",
                str(ref),
                hint=f"The edge's {end!r} end does not exist in graph {self.name!r}; add it first with: toolforge memory add-node",
            ) from None

    def remove_edges(self, src: int | str, dst: int | str, type: str | None = None) -> int:
        """Delete the edges src → dst (of ``type`` only, if given); return how many."""
        with self.store.write() as conn:
            a, b = self._resolve(conn, src), self._resolve(conn, dst)
            sql = "DELETE FROM memory_edges WHERE src = ? AND dst = ?"
            params: list[Any] = [a.id, b.id]
            if type is not None:
                sql += " AND type = ?"
                params.append(m.edge_type(type))
            count = conn.execute(sql, params).rowcount
        if not count:
            raise NotFoundError("edge", f"{a.label} -> {b.label}" + (f" ({type})" if type else ""))
        return count

    def edges(self) -> list[Edge]:
        return [
            edge_from_row(r)
            for r in self.store.rows(
                "SELECT * FROM memory_edges WHERE graph = ? ORDER BY id", (self.name,)
            )
        ]

    def edges_near(
        self, ids: Sequence[int], direction: Direction, types: Sequence[str] = ()
    ) -> list[Edge]:
        """Edges leaving (out), entering (in) or touching (both) the nodes ``ids``, ordered by id."""
        found: dict[int, Edge] = {}
        ends = {"out": ["src"], "in": ["dst"], "both": ["src", "dst"]}[direction.value]
        ids = list(ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for end in ends:
                sql = f"SELECT * FROM memory_edges WHERE {end} IN ({marks})"
                params: list[Any] = list(chunk)
                if types:
                    sql += f" AND type IN ({','.join('?' * len(types))})"
                    params += list(types)
                for row in self.store.rows(sql, params):
                    found[row["id"]] = edge_from_row(row)
        return [found[k] for k in sorted(found)]

    def relations(self, node_id: int, limit: int = MAX_RELATIONS) -> list[Relation]:
        """The edges of one node, each with the node at the other end (outgoing first)."""
        rows = self.store.rows(
            "SELECT 'out' AS direction, e.type, e.weight, n.id, n.type AS ntype, n.label FROM memory_edges e"
            " JOIN memory_nodes n ON n.id = e.dst WHERE e.src = ?"
            " UNION ALL "
            "SELECT 'in', e.type, e.weight, n.id, n.type, n.label FROM memory_edges e"
            " JOIN memory_nodes n ON n.id = e.src WHERE e.dst = ?"
            " ORDER BY 1 DESC, 2, 6 COLLATE NOCASE, 4 LIMIT ?",
            (node_id, node_id, limit),
        )
        return [Relation(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    # -- queries (query.py) -----------------------------------------------------------
    def query(self, text: str, mode: str = "similarity", **options: Any) -> list[Hit]:
        """Similarity, pattern or traverse query; see ``toolforge.memory.query.run_query``."""
        from toolforge.memory.query import run_query

        return run_query(self, text, mode, **options)

    # -- whole graph ------------------------------------------------------------------
    def info(self) -> GraphInfo:
        created = self.store.rows(
            "SELECT created_at FROM memory_graphs WHERE name = ?", (self.name,)
        )
        by_type = {
            r[0]: r[1]
            for r in self.store.rows(
                "SELECT type, count(*) FROM memory_nodes WHERE graph = ? GROUP BY type ORDER BY type",
                (self.name,),
            )
        }
        edge_types = {
            r[0]: r[1]
            for r in self.store.rows(
                "SELECT type, count(*) FROM memory_edges WHERE graph = ? GROUP BY type ORDER BY type",
                (self.name,),
            )
        }
        return GraphInfo(
            name=self.name,
            nodes=sum(by_type.values()),
            edges=sum(edge_types.values()),
            created_at=created[0][0] if created else "",
            by_type=by_type,
            edge_types=edge_types,
        )

    def export_data(self) -> dict[str, Any]:
        from toolforge.memory.transfer import export_graph

        return export_graph(self)

    def import_data(self, data: Any, *, source: str = "data") -> Any:
        from toolforge.memory.transfer import import_graph

        return import_graph(self, data, source=source)
