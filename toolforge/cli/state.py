"""State commands: ``toolforge state show|export|import|reset NAME [--ns NS]``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from toolforge.cli.render import console, forge, print_json, success, table

state_app = typer.Typer(
    help="A stateful tool's /state: show, export, import, reset.", no_args_is_help=True
)

NS_OPTION = typer.Option(None, "--ns", help="State namespace (default: the tool's main state).")


def register(app: typer.Typer) -> None:
    app.add_typer(state_app, name="state")


@state_app.command("show")
def show(
    ref: str = typer.Argument(..., help="NAME"),
    ns: str | None = NS_OPTION,
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the files in a tool's state (small text files with their content)."""
    with forge() as f:
        snap = f.state_show(ref, ns)
    if json_out:
        print_json(snap.to_json())
        return
    where = f"{escape(snap.location)}" + (f" (namespace {escape(ns)})" if ns else "")
    if not snap.exists:
        console().print(f"No state yet for {escape(snap.tool)}: {where} does not exist.")
        return
    console().print(f"State of {escape(snap.tool)}: {where}, {len(snap.files)} file(s)")
    if snap.files:
        rows = [[f.path, f.size, _preview(f.preview)] for f in snap.files]
        table(["path", "bytes", "content"], rows)


def _preview(text: str | None) -> str:
    if text is None:
        return "(binary or large)"
    flat = text.replace("\n", "⏎")
    return flat if len(flat) <= 60 else flat[:59] + "…"


@state_app.command("export")
def export(
    ref: str = typer.Argument(..., help="NAME"),
    dest: Path = typer.Argument(..., help="The .tar.gz to write."),
    ns: str | None = NS_OPTION,
) -> None:
    """Write a tool's state to a .tar.gz (paths relative to /state)."""
    with forge() as f:
        count = f.state_export(ref, dest, ns)
    success(f"Exported {count} file(s) of {ref} state to {dest}")


@state_app.command("import")
def import_(
    ref: str = typer.Argument(..., help="NAME"),
    src: Path = typer.Argument(..., help="A .tar.gz made by toolforge state export."),
    ns: str | None = NS_OPTION,
) -> None:
    """Replace a tool's state with the content of an archive."""
    with forge() as f:
        count = f.state_import(ref, src, ns)
    success(f"Imported {count} file(s) into {ref} state")


@state_app.command("reset")
def reset(
    ref: str = typer.Argument(..., help="NAME"),
    ns: str | None = NS_OPTION,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a tool's state (the volume / folder); the next call starts from nothing."""
    with forge() as f:
        record = f.tool(ref)
        label = record.name + (f" (namespace {ns})" if ns else "")
        if not yes and not typer.confirm(f"Delete the state of {label}?", default=False):
            raise typer.Exit(1)
        existed = f.state_reset(ref, ns)
    success(f"Reset the state of {label}" if existed else f"{label} had no state")
