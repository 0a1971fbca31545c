"""Hybrid similarity: BM25 ranks fused with cosine ranks of embeddings stored beside the nodes.

Vectors are computed lazily, at query time, for the nodes that have none for the current
embedding model (a trigger drops a node's vector when its label or content changes), in
batches, and kept as unit-length float32 blobs in ``memory_vectors``. Cosine is then a dot
product over every node of the graph — exact, and fine for an agent's memory of some
thousands of nodes; for far larger graphs leave the embedding model unset (BM25 only).
The two rankings are combined with reciprocal rank fusion (score = Σ 1 / (60 + rank)),
which needs no tuning between BM25's and cosine's scales.
"""

from __future__ import annotations

import math
import operator
from array import array
from typing import TYPE_CHECKING, Any

from toolforge.errors import ModelUnavailable
from toolforge.memory.models import Hit
from toolforge.memory.store import node_from_row

if TYPE_CHECKING:
    from toolforge.memory.store import Graph

RRF_K = 60
BATCH = 64


def _embed(graph: Graph, texts: list[str]) -> list[array]:
    """Unit-length vectors for ``texts`` from the configured embedder."""
    embedder = graph.store.embedder
    if embedder is None:
        raise ModelUnavailable(
            "No embedding model configured", hint="Set TOOLFORGE_EMBEDDING_MODEL."
        )
    try:
        vectors = embedder(texts)
    except NotImplementedError as e:
        raise ModelUnavailable(
            f"The embedding model {graph.store.embed_model or ''} cannot embed text",
            hint="Unset TOOLFORGE_EMBEDDING_MODEL to use full-text ranking only.",
        ) from e
    if len(vectors) != len(texts):
        raise ModelUnavailable(
            f"The embedding model returned {len(vectors)} vectors for {len(texts)} texts"
        )
    out = []
    for vec in vectors:
        norm = math.sqrt(sum(x * x for x in vec)) or 1.0
        out.append(array("f", (x / norm for x in vec)))
    return out


def refresh(graph: Graph) -> int:
    """Embed the graph's nodes that have no vector for the current model; return how many."""
    model = graph.store.embed_model
    todo = graph.store.rows(
        "SELECT n.id, n.label, n.content FROM memory_nodes n LEFT JOIN memory_vectors v ON v.node_id = n.id"
        " WHERE n.graph = ? AND (v.node_id IS NULL OR v.model != ?) ORDER BY n.id",
        (graph.name, model),
    )
    for i in range(0, len(todo), BATCH):
        batch = todo[i : i + BATCH]
        vectors = _embed(graph, [f"{r['label']}\n{r['content']}".strip() for r in batch])
        with graph.store.write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO memory_vectors (node_id, model, vec) VALUES (?,?,?)",
                [(r["id"], model, vec.tobytes()) for r, vec in zip(batch, vectors, strict=True)],
            )
    return len(todo)


def dot(a: array, b: array) -> float:
    """Cosine of two unit vectors; 0 for vectors of different dimension (another model's)."""
    if len(a) != len(b):
        return 0.0
    return float(sum(map(operator.mul, a, b)))


def hybrid(
    graph: Graph, text: str, lexical: list[Hit], where: str, params: list[Any], limit: int
) -> list[Hit]:
    """Fuse the BM25 hits with the nodes ranked by cosine similarity to ``text``."""
    refresh(graph)
    query = _embed(graph, [text])[0]
    rows = graph.store.rows(
        "SELECT n.*, v.vec FROM memory_nodes n JOIN memory_vectors v ON v.node_id = n.id"
        f" WHERE v.model = ?{where}",
        [graph.store.embed_model, *params],
    )
    scored = []
    for row in rows:
        vec = array("f")
        vec.frombytes(row["vec"])
        scored.append((dot(query, vec), row["id"], row))
    scored.sort(key=lambda s: (-s[0], s[1]))
    hits: dict[int, Hit] = {}
    fused: dict[int, float] = {}
    for rank, hit in enumerate(lexical, start=1):
        hits[hit.node.id] = hit
        fused[hit.node.id] = 1 / (RRF_K + rank)
    for rank, (cos, nid, row) in enumerate(scored[: max(limit * 5, 50)], start=1):
        hit = hits.setdefault(nid, Hit(node_from_row(row)))
        hit.scores["cosine"] = round(cos, 6)
        fused[nid] = fused.get(nid, 0.0) + 1 / (RRF_K + rank)
    for nid, hit in hits.items():
        hit.score = fused[nid]
    return sorted(hits.values(), key=lambda h: (-(h.score or 0.0), h.node.id))[:limit]
