"""Mermaid flowcharts (``graph LR``) of a graph or of the neighbourhood of one node.

Output is deterministic (nodes by id, edges by id) and safe: node ids are ``n<id>``,
labels are always double-quoted with every character Mermaid or HTML could read as
syntax written as a ``#code;`` entity, and the shape says the node type. The HTML page
embeds the Mermaid text twice: once for mermaid.js (loaded from a CDN, when online) to
draw, and once as plain text that stays readable with no network at all.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from toolforge.memory.models import Direction, Edge, Node

if TYPE_CHECKING:
    from toolforge.memory.store import Graph

MAX_LABEL = 60
DEFAULT_MAX_NODES = 300

# Opening and closing bracket per node type.
SHAPES = {
    "entity": ("[", "]"),
    "concept": ("(", ")"),
    "code": ("[[", "]]"),
    "query": ("{{", "}}"),
    "answer": ("([", "])"),
    "event": (">", "]"),
}
STYLES = {
    "entity": "fill:#e8f0fe,stroke:#4a6fa5",
    "concept": "fill:#e6f4ea,stroke:#3c8d5a",
    "code": "fill:#f3e8fd,stroke:#7b4fa0",
    "query": "fill:#fef7e0,stroke:#b08a1e",
    "answer": "fill:#fde8e7,stroke:#b3473f",
    "event": "fill:#eeeeee,stroke:#777777",
}
# Characters that Mermaid (quotes, entity codes, markdown strings) or HTML labels would interpret.
_ESCAPES = {
    '"': "#quot;",
    "#": "#35;",
    "&": "#amp;",
    "<": "#lt;",
    ">": "#gt;",
    "`": "#96;",
    "\\": "#92;",
}


def safe_label(text: str) -> str:
    """One line, at most MAX_LABEL characters, with every special character entity-coded."""
    flat = " ".join(text.split())
    if len(flat) > MAX_LABEL:
        flat = flat[: MAX_LABEL - 1] + "…"
    return "".join(_ESCAPES.get(ch, ch) for ch in flat)


def node_id(node_id: int) -> str:
    return f"n{node_id}"


def to_mermaid(nodes: Iterable[Node], edges: Iterable[Edge], *, note: str = "") -> str:
    """Mermaid text for these nodes and the edges between them."""
    nodes = sorted(nodes, key=lambda n: n.id)
    present = {n.id for n in nodes}
    lines = ["graph LR"]
    if note:
        lines.append(f"    %% {' '.join(note.split())}")
    for n in nodes:
        open_, close = SHAPES.get(n.type, ("[", "]"))
        lines.append(f'    {node_id(n.id)}{open_}"{safe_label(n.label)}"{close}')
    for e in sorted(edges, key=lambda e: e.id):
        if e.src in present and e.dst in present:
            text = e.type if e.weight == 1.0 else f"{e.type} {e.weight:g}"
            lines.append(f'    {node_id(e.src)} -->|"{safe_label(text)}"| {node_id(e.dst)}')
    used = sorted({n.type for n in nodes})
    for kind in used:
        lines.append(f"    classDef {kind} {STYLES.get(kind, STYLES['entity'])}")
    for kind in used:
        members = ",".join(node_id(n.id) for n in nodes if n.type == kind)
        lines.append(f"    class {members} {kind}")
    return "\n".join(lines) + "\n"


def graph_mermaid(
    graph: Graph,
    *,
    center: str | int | None = None,
    radius: int = 1,
    max_nodes: int = DEFAULT_MAX_NODES,
) -> str:
    """The whole graph, or the nodes within ``radius`` hops (either direction) of ``center``."""
    from toolforge.memory.query import run_query

    if center is not None:
        hits = run_query(
            graph, str(center), "traverse", radius=radius, direction=Direction.both, relations=False
        )
        nodes = [h.node for h in hits]
    else:
        nodes = graph.nodes()
    note = ""
    if len(nodes) > max_nodes:
        note = f"showing {max_nodes} of {len(nodes)} nodes; narrow it with --center and --radius"
        nodes = sorted(nodes, key=lambda n: n.id)[:max_nodes]
    ids = [n.id for n in nodes]
    edges = graph.edges_near(ids, Direction.out) if ids else []
    return to_mermaid(nodes, edges, note=note)


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
 body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
 pre.source {{ background: #f6f6f6; padding: 1rem; overflow-x: auto; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>{summary}</p>
<pre class="mermaid">
{text}</pre>
<h2>Mermaid source</h2>
<p>Paste it into any Mermaid renderer, or open this page online to see it drawn above.</p>
<pre class="source">
{text}</pre>
<script type="module">
  import mermaid from "https://cdn.jsdelivr.net/npm/mermaid@10/dist/mermaid.esm.min.mjs";
  mermaid.initialize({{ startOnLoad: true, securityLevel: "strict" }});
</script>
</body>
</html>
"""


def html_page(mermaid_text: str, *, title: str, summary: str = "") -> str:
    """A standalone page: mermaid.js draws the diagram; the text is readable without it."""
    return PAGE.format(
        title=html.escape(title), summary=html.escape(summary), text=html.escape(mermaid_text)
    )


def write_html(path: Path | str, mermaid_text: str, *, title: str, summary: str = "") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html_page(mermaid_text, title=title, summary=summary), encoding="utf-8")
    return path
