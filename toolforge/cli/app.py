"""The root ``toolforge`` command: composes the command modules and holds the one error boundary."""

from __future__ import annotations

import os
import sys
from importlib import import_module

import typer

from toolforge import __version__
from toolforge.errors import Interrupted, ToolforgeError

app = typer.Typer(
    name="toolforge",
    help="Sandboxed tool synthesis: describe a tool, get it built, tested and registered.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

# Each module adds its commands / sub-groups through ``register(app)``.
COMMAND_MODULES = [
    "tools",  # add, list, show, remove, export
    "calls",  # run, test
    "generate",  # generate
    "images",  # images build|list, gc
    "state",  # state show|export|import|reset
    "jobs",  # jobs …, worker …
    "model",  # model status|start|stop
    "agents",  # agents …, solve, runs …
    "memory",  # memory …
    "doctor",  # doctor
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"toolforge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """toolforge: describe a tool in plain words; get it built, tested in a sandbox, and registered."""


for _name in COMMAND_MODULES:
    import_module(f"toolforge.cli.{_name}").register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app inside the one error boundary."""
    from toolforge.cli.render import err_console

    debug = os.environ.get("TOOLFORGE_DEBUG") == "1"
    try:
        code = app(args=argv, standalone_mode=False, prog_name="toolforge")
        if code == Interrupted.exit_code:  # typer turns Ctrl-C into a silent Exit(130)
            err_console().print(f"[bold red]Error:[/] {Interrupted()}")
    except ToolforgeError as e:
        if debug:
            raise
        err_console().print(
            f"[bold red]Error:[/] {e}", highlight=False, markup=True, soft_wrap=True
        )
        code = e.exit_code
    except (KeyboardInterrupt, typer.Abort):
        if debug:
            raise
        err_console().print(f"[bold red]Error:[/] {Interrupted()}")
        code = 130
    except typer.TyperException as e:  # usage errors from the CLI parser (typer's click)
        show = getattr(e, "show", None)
        if callable(show):
            show()
        else:
            err_console().print(f"[bold red]Error:[/] {e}")
        code = int(getattr(e, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)
