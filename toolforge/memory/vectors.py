"""Hybrid similarity: BM25 ranks fused with cosine ranks of embeddings stored beside the nodes.

Vectors are computed lazily, at query time, for nodes that lack one for the current
embedding model (or whose text changed since), in batches, and kept as float32 blobs in
``memory_vectors``. The two rankings are combined with reciprocal rank fusion
(score = Σ 1 / (60 + rank)), which needs no tuning between BM25's and cosine's scales.
"""

from __future__ import annotations

import hashlib
import math
from array import array
from typing import TYPE_CHECKING, Any

from toolforge.errors import ModelUnavailable
from toolforge.memory.models import Hit
from toolforge.memory.store import node_from_row

if TYPE_CHECKING:
    from toolforge.memory.store import Graph

RRF_K = 60
BATCH = 64


def _text(label: str, content: str) -> str:
    return f"{label}\n{content}".strip()


def _hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _embed(graph: Graph, texts: list[str]) -> list[list[float]]:
    embedder = graph.store.embedder
    if embedder is None:
        raise ModelUnavailable("No embedding model configured", hint="Set TOOLFORGE_EMBEDDING_MODEL.")
    try:
        vectors = embedder(texts)
    except NotImplementedError as e:
        raise ModelUnavailable(
            f"The embedding model {graph.store.embed_model or ''} cannot embed text",
            hint="Unset TOOLFORGE_EMBEDDING_MODEL to use full-text ranking only.",
        ) from e
    if len(vectors) != len(texts):
        raise ModelUnavailable(f"The embedding model returned {len(vectors)} vectors for {len(texts)} texts")
    return vectors


def refresh(graph: Graph) -> int:
    """Embed the graph's nodes whose vector is missing or stale; return how many were embedded."""
    model = graph.store.embed_model
    rows = graph.store.rows(
        "SELECT n.id, n.label, n.content, v.model, v.text_hash FROM memory_nodes n"
        " LEFT JOIN memory_vectors v ON v.node_id = n.id WHERE n.graph = ? ORDER BY n.id",
        (graph.name,),
    )
    todo = []
    for row in rows:
        text = _text(row["label"], row["content"])
        if row["model"] != model or row["text_hash"] != _hash(text):
            todo.append((row["id"], text))
    for i in range(0, len(todo), BATCH):
        batch = todo[i : i + BATCH]
        vectors = _embed(graph, [t for _, t in batch])
        with graph.store.write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO memory_vectors (node_id, model, text_hash, vec) VALUES (?,?,?,?)",
                [(nid, model, _hash(t), array("f", vec).tobytes()) for (nid, t), vec in zip(batch, vectors)],
            )
    return len(todo)


def cosine(a: array, b: array) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def hybrid(graph: Graph, text: str, lexical: list[Hit], where: str, params: list[Any], limit: int) -> list[Hit]:
    """Fuse the BM25 hits with the nodes ranked by cosine similarity to ``text``."""
    refresh(graph)
    query = array("f", _embed(graph, [text])[0])
    rows = graph.store.rows(
        "SELECT n.*, v.vec FROM memory_nodes n JOIN memory_vectors v ON v.node_id = n.id"
        f" WHERE v.model = ?{where}",
        [graph.store.embed_model, *params],
    )
    scored = []
    for row in rows:
        vec = array("f")
        vec.frombytes(row["vec"])
        scored.append((cosine(query, vec), row["id"], row))
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
        hit.score = round(fused[nid], 6)
    return sorted(hits.values(), key=lambda h: (-(h.score or 0.0), h.node.id))[:limit]
