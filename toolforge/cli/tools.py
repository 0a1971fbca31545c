"""Registry commands: add, list, show, remove, export."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.syntax import Syntax

from toolforge.cli.render import console, forge, print_json, success, table


def register(app: typer.Typer) -> None:
    app.command("add")(add)
    app.command("list")(list_tools)
    app.command("show")(show)
    app.command("remove")(remove)
    app.command("export")(export)


def add(
    path: Path = typer.Argument(
        ..., help="A tool folder: tool.yaml plus main.py | main.ts | main.sh."
    ),
    no_test: bool = typer.Option(
        False, "--no-test", help="Register without running the tests in the sandbox."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Register a hand-written tool (its tests must pass in the sandbox, unless --no-test)."""
    with forge() as f:
        record, created = f.add(path, test=not no_test)
        if json_out:
            print_json({**record.summary(), "created": created})
        elif created:
            success(
                f"Registered {record.name}@{record.version}"
                + (f" ({record.report.summary})" if record.report else "")
            )
        else:
            success(f"{record.name}@{record.version} is already registered with the same content")


def list_tools(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the registered tools (latest version of each)."""
    with forge() as f:
        records = f.list_tools()
        if json_out:
            print_json([{**r.summary(), "versions": f.registry.versions(r.name)} for r in records])
            return
        if not records:
            console().print(
                'No tools registered yet. Add one with: toolforge add PATH, or toolforge generate "…"'
            )
            return
        rows = [
            [
                r.name,
                r.version,
                r.spec.language.value,
                "yes" if r.spec.stateful else "",
                r.report.summary if r.report else "untested",
                r.spec.description,
            ]
            for r in records
        ]
        table(["name", "version", "language", "stateful", "tests", "description"], rows)


def show(
    ref: str = typer.Argument(..., help="NAME or NAME@VERSION"),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    source: bool = typer.Option(False, "--source", help="Also print the implementation."),
) -> None:
    """Show a tool's spec, versions and last test report."""
    with forge() as f:
        record = f.tool(ref)
        versions = f.registry.versions(record.name)
        if json_out:
            data = {
                **record.summary(),
                "versions": versions,
                "spec": record.spec.to_yaml_dict(),
                "report": record.report.model_dump(mode="json") if record.report else None,
                "meta": record.meta,
                "path": str(record.path),
            }
            if source:
                data["source"] = record.bundle.source
            print_json(data)
            return
        out = console()
        spec = record.spec
        out.print(
            f"[bold]{escape(record.name)}[/]@{record.version}  ({spec.language.value}) — {escape(spec.description)}"
        )
        out.print(
            f"versions: {', '.join(map(str, versions))}    stateful: {spec.stateful}    network: {spec.network}"
        )
        lim = spec.limits
        out.print(
            f"limits: timeout {lim.timeout_s:g}s, memory {lim.memory_mb} MB, cpus {lim.cpus:g}, pids {lim.pids}, output {lim.output_kb} KB"
        )
        props = spec.parameters.get("properties", {})
        required = set(spec.parameters.get("required", []))
        rows = [
            [k, v.get("type", "any"), "yes" if k in required else "", v.get("description", "")]
            for k, v in props.items()
        ]
        if rows:
            table(["parameter", "type", "required", "description"], rows)
        if record.report:
            out.print(f"last test report: {record.report.summary} ({record.report.created_at})")
        else:
            out.print("last test report: none (run: toolforge test " + escape(record.name) + ")")
        if record.meta.get("requirement") or spec.requirement:
            out.print(
                f"requirement: {escape(record.meta.get('requirement') or spec.requirement or '')}"
            )
        if source:
            lexer = {"python": "python", "typescript": "typescript", "bash": "bash"}[
                spec.language.value
            ]
            out.print(Syntax(record.bundle.source, lexer, line_numbers=True))


def remove(
    ref: str = typer.Argument(..., help="NAME (every version) or NAME@VERSION"),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Remove one version of a tool, or all of them."""
    with forge() as f:
        record = f.tool(ref)  # fails early on unknown tools
        what = (
            ref
            if "@" in ref
            else f"{record.name} (all {len(f.registry.versions(record.name))} versions)"
        )
        if not yes and not typer.confirm(f"Remove {what}?", default=False):
            raise typer.Exit(1)
        versions = f.remove(ref)
        success(f"Removed {record.name} version(s) {', '.join(map(str, versions))}")


def export(
    ref: str = typer.Argument(..., help="NAME or NAME@VERSION"),
    dest: Path = typer.Argument(..., help="An empty or new folder."),
) -> None:
    """Write a registered tool back out as a tool folder."""
    with forge() as f:
        path = f.export(ref, dest)
        success(f"Exported {ref} to {path}")
