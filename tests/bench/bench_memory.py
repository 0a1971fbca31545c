"""Graph memory on generated graphs of 10k and 100k nodes (two edges per node).

For each size: similarity (FTS5/BM25), pattern (glob) and radius-2 traversal latency,
median and p99, each beside the same query answered by a linear scan in Python over the
same data held in lists (BM25 in Python; fnmatch over every node; BFS that scans the whole
edge list per hop), plus insert throughput: one ``add_node`` per transaction, and a bulk
JSON import (one transaction) — beside appending the same records to Python lists.
Queries run with ``relations=False`` so both sides do the same work.
"""

from __future__ import annotations

import fnmatch
import math
import random
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

from tests.bench.report import Report, p50, p99, timed
from toolforge.memory import MemoryStore
from toolforge.memory.models import NodeType

SIZES = (10_000, 100_000)
EDGE_TYPES = ("uses", "depends_on", "implements", "calls", "about")
_WORD = re.compile(r"\w+")


def vocabulary(rng: random.Random, n: int = 3000) -> list[str]:
    syllables = [
        "ka",
        "lo",
        "mi",
        "ne",
        "ru",
        "sa",
        "ti",
        "vo",
        "ze",
        "pa",
        "qu",
        "dor",
        "fen",
        "gil",
        "hax",
    ]
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def generate(n: int, seed: int = 7) -> tuple[list[dict], list[dict], list[str]]:
    rng = random.Random(seed)
    words = vocabulary(rng)
    zipf = [1 / (i + 1) for i in range(len(words))]  # a few common words, a long tail, like text
    types = [t.value for t in NodeType]
    nodes = []
    for i in range(n):
        label = " ".join(rng.choices(words, zipf, k=2)) + f" {i}"
        content = " ".join(rng.choices(words, zipf, k=12))
        nodes.append(
            {"id": i + 1, "type": types[i % len(types)], "label": label, "content": content}
        )
    edges = []
    for i in range(n):
        for _ in range(2):
            j = rng.randrange(n)
            if j != i:
                edges.append({"from": i + 1, "to": j + 1, "type": rng.choice(EDGE_TYPES)})
    return nodes, edges, words


# -- the linear-scan baseline -----------------------------------------------------------------
class Scan:
    """The same data in Python lists, answered by looking at every item."""

    def __init__(self, nodes: list[dict], edges: list[dict]) -> None:
        self.nodes = nodes
        self.edges = edges
        self.tokens = [
            (
                Counter(_WORD.findall(n["label"].lower())),
                Counter(_WORD.findall(n["content"].lower())),
            )
            for n in nodes
        ]
        self.df: Counter[str] = Counter()
        for label, content in self.tokens:
            self.df.update(set(label) | set(content))
        self.avg = sum(sum(lab.values()) + sum(con.values()) for lab, con in self.tokens) / len(
            nodes
        )

    def similarity(self, text: str, limit: int = 10) -> list[int]:
        terms = set(_WORD.findall(text.lower()))
        n = len(self.nodes)
        scored = []
        for idx, (label, content) in enumerate(self.tokens):
            score = 0.0
            size = sum(label.values()) + sum(content.values())
            for t in terms:
                tf = 4 * label.get(t, 0) + content.get(t, 0)
                if tf:
                    idf = math.log((n - self.df[t] + 0.5) / (self.df[t] + 0.5) + 1)
                    score += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * size / self.avg))
            if score:
                scored.append((-score, idx))
        scored.sort()
        return [self.nodes[i]["id"] for _, i in scored[:limit]]

    def pattern(self, glob: str, limit: int = 10) -> list[int]:
        rx = re.compile(fnmatch.translate(glob), re.IGNORECASE)
        found = [n for n in self.nodes if rx.match(n["label"]) or rx.match(n["content"])]
        found.sort(key=lambda n: (n["label"].lower(), n["id"]))
        return [n["id"] for n in found[:limit]]

    def traverse(self, start: int, radius: int = 2) -> int:
        seen = {start}
        frontier = {start}
        for _ in range(radius):
            nxt = set()
            for e in self.edges:  # no index: every hop reads every edge
                for a, b in ((e["from"], e["to"]), (e["to"], e["from"])):
                    if a in frontier and b not in seen:
                        seen.add(b)
                        nxt.add(b)
            frontier = nxt
        return len(seen)


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else float("inf")


def bench_size(report: Report, n: int, workdir: Path) -> None:
    tag = f"{n // 1000}k"
    nodes, edges, words = generate(n)
    rng = random.Random(n)

    t0 = time.perf_counter()
    scan_nodes, scan_edges = [], []
    for node in nodes:
        scan_nodes.append(dict(node))
    for edge in edges:
        scan_edges.append(dict(edge))
    list_s = time.perf_counter() - t0

    with MemoryStore(workdir / f"bench-{tag}.db") as store:
        g = store.graph("bench")
        t0 = time.perf_counter()
        g.import_data({"nodes": nodes, "edges": edges}, source="generated")
        bulk_s = time.perf_counter() - t0
        report.add(
            "memory",
            f"{tag}: bulk import (1 transaction)",
            _rate(len(nodes) + len(edges), bulk_s),
            "items/s",
            baseline_name="append to Python lists",
            baseline=_rate(len(nodes) + len(edges), list_s),
            note=f"{len(nodes):,} nodes + {len(edges):,} edges in {bulk_s:.1f} s",
        )
        single = 1000
        t0 = time.perf_counter()
        for i in range(single):
            g.add_node("entity", f"extra {i}", "inserted one at a time")
        single_s = time.perf_counter() - t0
        report.add(
            "memory",
            f"{tag}: add_node (1 transaction each)",
            _rate(single, single_s),
            "nodes/s",
            baseline_name="append to Python lists",
            baseline=_rate(len(nodes), list_s),
            note=f"{single} inserts",
        )

        scan = Scan(scan_nodes, scan_edges)
        queries = [" ".join(rng.sample(words[:1500], 3)) for _ in range(200)]
        globs = [f"{rng.choice(words)}*" for _ in range(60)] + [
            f"*{rng.choice(words)} {rng.choice(words)}*" for _ in range(20)
        ]
        starts = [rng.randrange(1, n + 1) for _ in range(200)]
        base_k = (
            40 if n <= 10_000 else 12
        )  # the scans are slow: fewer samples (p99 of few is their max)

        def series(name: str, ours: list[float], base: list[float], what: str) -> None:
            report.add(
                "memory",
                f"{tag}: {name} p50",
                p50(ours),
                "ms",
                baseline_name=what,
                baseline=p50(base),
                note=f"p99 {p99(ours):.2f} ms vs {p99(base):.1f} ms; {len(ours)}/{len(base)} runs",
            )

        qi = iter(queries * 2)
        ours = timed(lambda: g.query(next(qi), "similarity", relations=False), len(queries))
        qi2 = iter(queries)
        base = timed(lambda: scan.similarity(next(qi2)), base_k)
        series("similarity (BM25)", ours, base, "Python BM25 scan")

        gi = iter(globs * 2)
        ours = timed(lambda: g.query(next(gi), "pattern", relations=False), len(globs))
        gi2 = iter(globs)
        base = timed(lambda: scan.pattern(next(gi2)), min(base_k, len(globs)))
        series("pattern (glob)", ours, base, "Python fnmatch scan")

        si = iter(starts * 2)
        ours = timed(
            lambda: g.query(str(next(si)), "traverse", radius=2, relations=False), len(starts)
        )
        si2 = iter(starts)
        base = timed(lambda: scan.traverse(next(si2)), base_k // 2)
        series("traverse radius 2", ours, base, "Python edge-list BFS")

        # sanity: both sides agree on what they found
        sample = starts[0]
        assert len(g.query(str(sample), "traverse", radius=2, relations=False)) == scan.traverse(
            sample
        )  # noqa: S101
        assert [h.node.id for h in g.query(globs[0], "pattern", relations=False)] == scan.pattern(
            globs[0]
        )  # noqa: S101


def bench(report: Report) -> None:
    with tempfile.TemporaryDirectory(prefix="tf-bench-memory-") as tmp:
        for n in SIZES:
            t0 = time.perf_counter()
            bench_size(report, n, Path(tmp))
            print(f"   memory {n:,} nodes: {time.perf_counter() - t0:.0f} s", flush=True)
