"""Output helpers shared by the commands: consoles, JSON, tables."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape

_out: Console | None = None
_err: Console | None = None


def console() -> Console:
    global _out
    if _out is None or _out.file is not sys.stdout:
        _out = Console(file=sys.stdout, highlight=False, soft_wrap=True)
    return _out


def err_console() -> Console:
    global _err
    if _err is None or _err.file is not sys.stderr:
        _err = Console(file=sys.stderr, highlight=False, soft_wrap=True)
    return _err


def print_json(data: Any) -> None:
    """Machine-readable output: one JSON document on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def table(
    columns: list[str],
    rows: list[list[Any]],
    *,
    title: str | None = None,
    out: Console | None = None,
) -> None:
    from rich.table import Table

    t = Table(title=title, show_lines=False, header_style="bold")
    for i, col in enumerate(columns):
        # the first column names the row (tool, tag, id): never cut it; fold the others
        t.add_column(col, no_wrap=(i == 0), overflow="fold")
    for row in rows:
        t.add_row(*[escape("" if v is None else str(v)) for v in row])
    (out or console()).print(t)


def success(message: str, out: Console | None = None) -> None:
    (out or console()).print(f"[green]✓[/] {escape(message)}")


def forge():  # noqa: ANN201 - imported lazily so --help stays fast
    from toolforge.forge import Forge

    return Forge()
