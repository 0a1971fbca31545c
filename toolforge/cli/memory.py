"""Graph memory commands: ``toolforge memory query|add-node|add-edge|show|remove|import|export|visualize|compress|graphs|stats``.

Output is plain lines (no tables) so scripts and tests can read it; ``--json`` everywhere
prints one JSON document instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from toolforge.cli.render import console, forge, print_json, success
from toolforge.errors import UsageError
from toolforge.memory.models import Edge, GraphInfo, Hit, Node, Relation

memory_app = typer.Typer(
    help="Graph memory: a knowledge graph agents read and write.", no_args_is_help=True
)

GRAPH = typer.Option("default", "--graph", "-g", help="The graph (namespace) to use.")
JSON = typer.Option(False, "--json", help="Print JSON.")


def register(app: typer.Typer) -> None:
    app.add_typer(memory_app, name="memory")


def _meta(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(
            f'--meta is not valid JSON ({e.msg}); give an object such as \'{{"source": "docs"}}\''
        ) from None
    if not isinstance(value, dict):
        raise UsageError('--meta must be a JSON object, such as \'{"source": "docs"}\'')
    return value


def _short(text: str, width: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def node_line(node: Node) -> str:
    return f'#{node.id} {node.type} "{node.label}"'


def relation_text(r: Relation) -> str:
    arrow = f"-{r.type}->" if r.direction == "out" else f"<-{r.type}-"
    return f'{arrow} {r.node_type} "{r.node_label}" (#{r.node_id})'


def hit_lines(rank: int, hit: Hit) -> list[str]:
    head = f"{rank}. {node_line(hit.node)}"
    if hit.score is not None:
        head += f"  score {hit.score:.4g}"
    if hit.depth is not None:
        head += f"  depth {hit.depth}"
    if hit.via is not None:
        head += f"  via {hit.via.type}"
    lines = [head]
    if hit.node.content:
        lines.append(f"   {_short(hit.node.content)}")
    if hit.relations:
        lines.append(
            "   "
            + "; ".join(relation_text(r) for r in hit.relations[:5])
            + (f"; … {len(hit.relations) - 5} more" if len(hit.relations) > 5 else "")
        )
    return lines


def _print(lines: list[str]) -> None:
    out = console()
    for line in lines:
        out.print(line, markup=False)


def _edge_line(edge: Edge, src: str, dst: str) -> str:
    weight = "" if edge.weight == 1.0 else f" (weight {edge.weight:g})"
    return f"{src} -{edge.type}-> {dst}{weight}"


# -- queries ---------------------------------------------------------------------------------
@memory_app.command("query")
def query(
    text: str = typer.Argument(
        ..., help="Words (similarity), a glob or /regex/ (pattern), or a start node (traverse)."
    ),
    mode: str = typer.Option("similarity", "--mode", "-m", help="similarity | pattern | traverse"),
    type: str | None = typer.Option(None, "--type", "-t", help="Only nodes of this type."),
    limit: int | None = typer.Option(
        None, "--limit", "-n", help="At most this many results (default 10; traverse: all)."
    ),
    radius: int = typer.Option(1, "--radius", "-r", help="traverse: hops from the start node."),
    edge_type: list[str] = typer.Option(
        [], "--edge-type", "-e", help="Only these edge types (repeatable)."
    ),
    direction: str = typer.Option("both", "--direction", "-d", help="traverse: out | in | both"),
    graph: str = GRAPH,
    json_out: bool = JSON,
) -> None:
    """Query the graph by similarity, pattern or traversal."""
    with forge() as f:
        hits = f.memory(graph, create=False).query(
            text,
            mode,
            type=type,
            limit=limit,
            radius=radius,
            edge_types=edge_type,
            direction=direction,
        )
        if json_out:
            print_json([h.to_dict() for h in hits])
            return
        if not hits:
            console().print("No matches.")
            return
        _print([line for rank, hit in enumerate(hits, start=1) for line in hit_lines(rank, hit)])


# -- writing ---------------------------------------------------------------------------------
@memory_app.command("add-node")
def add_node(
    type: str = typer.Option(
        ..., "--type", "-t", help="entity | concept | code | query | answer | event"
    ),
    label: str = typer.Option(
        ..., "--label", "-l", help="Short name, unique per type in the graph."
    ),
    content: str = typer.Option("", "--content", "-c", help="What is known about it."),
    meta: str | None = typer.Option(None, "--meta", help="A JSON object of metadata."),
    graph: str = GRAPH,
    json_out: bool = JSON,
) -> None:
    """Add a node (or update the node with the same type and label)."""
    with forge() as f:
        node, created = f.memory(graph).add_node(type, label, content, _meta(meta))
        if json_out:
            print_json({**node.to_dict(), "created": created})
        else:
            success(f"{'Added' if created else 'Updated'} {node_line(node)}")


@memory_app.command("add-edge")
def add_edge(
    src: str = typer.Option(..., "--from", help="Label or id of the source node."),
    dst: str = typer.Option(..., "--to", help="Label or id of the target node."),
    type: str = typer.Option(
        ..., "--type", "-t", help="Relation, e.g. uses, depends_on, implements, calls, about."
    ),
    weight: float = typer.Option(1.0, "--weight", "-w", help="Strength of the relation."),
    meta: str | None = typer.Option(None, "--meta", help="A JSON object of metadata."),
    graph: str = GRAPH,
    json_out: bool = JSON,
) -> None:
    """Relate two existing nodes (named by label, TYPE:LABEL or id)."""
    with forge() as f:
        g = f.memory(graph, create=False)
        edge, created = g.add_edge(src, dst, type, weight, _meta(meta))
        if json_out:
            print_json({**edge.to_dict(), "created": created})
            return
        a, b = g.node(edge.src), g.node(edge.dst)
        success(
            f"{'Added' if created else 'Updated'} {_edge_line(edge, node_line(a), node_line(b))}"
        )


@memory_app.command("show")
def show(
    node: str = typer.Argument(..., help="Label, TYPE:LABEL or id."),
    graph: str = GRAPH,
    json_out: bool = JSON,
) -> None:
    """Show one node with all its relations."""
    with forge() as f:
        g = f.memory(graph, create=False)
        found = g.node(node)
        relations = g.relations(found.id, limit=1000)
        if json_out:
            print_json({**found.to_dict(), "relations": [r.to_dict() for r in relations]})
            return
        lines = [node_line(found)]
        if found.content:
            lines.append(f"content: {found.content}")
        if found.meta:
            lines.append(f"meta: {json.dumps(found.meta, sort_keys=True, ensure_ascii=False)}")
        lines.append(f"created {found.created_at}, updated {found.updated_at}")
        lines.append(f"relations: {len(relations)}")
        lines += [f"  {relation_text(r)}" for r in relations]
        _print(lines)


@memory_app.command("remove")
def remove(
    node: str = typer.Argument(..., help="Label, TYPE:LABEL or id."), graph: str = GRAPH
) -> None:
    """Remove a node and every edge touching it."""
    with forge() as f:
        gone = f.memory(graph, create=False).remove_node(node)
        success(f"Removed {node_line(gone)}")


@memory_app.command("remove-edge")
def remove_edge(
    src: str = typer.Option(..., "--from", help="Label or id of the source node."),
    dst: str = typer.Option(..., "--to", help="Label or id of the target node."),
    type: str | None = typer.Option(
        None, "--type", "-t", help="Only this relation (default: every one)."
    ),
    graph: str = GRAPH,
) -> None:
    """Remove the edges from one node to another."""
    with forge() as f:
        count = f.memory(graph, create=False).remove_edges(src, dst, type)
        success(f"Removed {count} edge(s)")


# -- files -----------------------------------------------------------------------------------
@memory_app.command("import")
def import_graph(
    file: Path = typer.Argument(..., help="A JSON file written by memory export."),
    graph: str = GRAPH,
    json_out: bool = JSON,
) -> None:
    """Merge a JSON graph file into a graph: all of it, or nothing if any part is bad."""
    from toolforge.memory.transfer import read_import

    data = read_import(file)
    with forge() as f:
        result = f.memory(graph).import_data(data, source=str(file))
        if json_out:
            print_json(result.to_dict())
        else:
            success(
                f"Imported {file} into {graph}: {result.nodes_created} node(s) added, {result.nodes_updated} updated, "
                f"{result.edges_created} edge(s) added, {result.edges_updated} updated"
            )


@memory_app.command("export")
def export_graph(
    file: Path = typer.Argument(..., help="Where to write the JSON."), graph: str = GRAPH
) -> None:
    """Write a whole graph to a JSON file."""
    from toolforge.memory.transfer import write_export

    with forge() as f:
        data = write_export(f.memory(graph, create=False), file)
        success(
            f"Exported {len(data['nodes'])} node(s) and {len(data['edges'])} edge(s) of {graph} to {file}"
        )


@memory_app.command("visualize")
def visualize(
    center: str | None = typer.Option(
        None, "--center", help="Only the neighbourhood of this node."
    ),
    radius: int = typer.Option(1, "--radius", "-r", help="Hops around --center."),
    html: Path | None = typer.Option(
        None, "--html", help="Also write a standalone HTML page here."
    ),
    graph: str = GRAPH,
) -> None:
    """Print the graph as Mermaid (graph LR); --html writes a page that draws it."""
    from toolforge.memory.mermaid import graph_mermaid, write_html

    with forge() as f:
        text = graph_mermaid(f.memory(graph, create=False), center=center, radius=radius)
        if html is None:
            console().file.write(text)
            return
        summary = f"graph {graph}" + (f", {radius} hop(s) around {center}" if center else "")
        write_html(html, text, title=f"toolforge memory: {graph}", summary=summary)
        success(f"Wrote {html}")


@memory_app.command("compress")
def compress(
    run: str | None = typer.Option(
        None, "--run", help="A coordinator run id (toolforge runs list)."
    ),
    events: Path | None = typer.Option(
        None, "--events", help="A JSONL file, one event object per line."
    ),
    retain: list[str] = typer.Option(
        [], "--retain", help="Keep events of this kind verbatim (repeatable)."
    ),
    graph: str = GRAPH,
    json_out: bool = JSON,
) -> None:
    """Have the model turn a session's events into nodes and edges, merged into the graph."""
    from toolforge.memory.compress import compress_events, load_events

    with forge() as f:
        source, items = load_events(f.settings, run_id=run, path=events)
        with console().status(f"Compressing {len(items)} event(s) of {source}…") as status:
            result = compress_events(
                f.memory(graph),
                f.llm,
                items,
                source=source,
                retain_kinds=retain,
                progress=lambda i, n: status.update(f"Compressing {source}: chunk {i} of {n}…"),
            )
        if json_out:
            print_json(result.to_dict())
            return
        success(
            f"Compressed {result.events} event(s) of {source} into {graph}: "
            f"{len(result.nodes_created)} node(s) added, {len(result.nodes_merged)} merged, "
            f"{result.edges_created} edge(s) added, {len(result.events_retained)} event(s) kept"
        )
        if result.edges_dropped:
            console().print(
                f"dropped {len(result.edges_dropped)} edge(s) naming unknown nodes: "
                + "; ".join(result.edges_dropped[:5]),
                markup=False,
            )


# -- graphs ----------------------------------------------------------------------------------
def _info_lines(info: GraphInfo) -> list[str]:
    lines = [f"{info.name}: {info.nodes} node(s), {info.edges} edge(s)"]
    if info.by_type:
        lines.append("  nodes: " + ", ".join(f"{k} {v}" for k, v in info.by_type.items()))
    if info.edge_types:
        lines.append("  edges: " + ", ".join(f"{k} {v}" for k, v in info.edge_types.items()))
    return lines


@memory_app.command("graphs")
def graphs(json_out: bool = JSON) -> None:
    """List the graphs with their node and edge counts."""
    with forge() as f:
        infos = f.memory_store.graphs()
        if json_out:
            print_json([i.to_dict() for i in infos])
        elif not infos:
            console().print(
                "No graphs yet. Add a node with: toolforge memory add-node --type T --label L"
            )
        else:
            _print([f"{i.name}: {i.nodes} node(s), {i.edges} edge(s)" for i in infos])


@memory_app.command("stats")
def stats(graph: str = GRAPH, json_out: bool = JSON) -> None:
    """Counts of one graph's nodes by type and edges by type."""
    with forge() as f:
        info = f.memory(graph, create=False).info()
        if json_out:
            print_json(info.to_dict())
        else:
            _print(_info_lines(info))


@memory_app.command("drop")
def drop(
    graph: str = typer.Argument(..., help="The graph to delete."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a whole graph."""
    with forge() as f:
        info = f.memory(graph, create=False).info()
        if not yes and not typer.confirm(
            f"Delete graph {graph} ({info.nodes} nodes, {info.edges} edges)?", default=False
        ):
            raise typer.Exit(1)
        f.memory_store.drop(graph)
        success(f"Deleted graph {graph} ({info.nodes} node(s), {info.edges} edge(s))")
