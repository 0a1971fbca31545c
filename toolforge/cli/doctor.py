"""``toolforge doctor``."""

from __future__ import annotations

import typer
from rich.markup import escape

from toolforge.cli.render import console, print_json


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


def doctor(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Check the Docker engine, base images, model and TOOLFORGE_HOME; say how to fix each failure."""
    from toolforge.config import load_settings
    from toolforge.doctor import run_checks

    checks = run_checks(load_settings())
    if json_out:
        print_json([c.__dict__ for c in checks])
    else:
        out = console()
        for c in checks:
            mark = "[green]ok  [/]" if c.ok else "[red]fail[/]"
            out.print(f"{mark} {escape(c.name)}: {escape(c.detail)}")
            if not c.ok and c.fix:
                out.print(f"       fix: {escape(c.fix)}")
    if not all(c.ok for c in checks):
        raise typer.Exit(3)
