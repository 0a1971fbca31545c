"""Call commands: ``toolforge run`` (one call in the sandbox) and ``toolforge test``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from toolforge.cli.render import console, err_console, forge, print_json, table
from toolforge.errors import ToolforgeError, UsageError


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("test")(test)


def run(
    ref: str = typer.Argument(..., help="NAME or NAME@VERSION"),
    arg: list[str] = typer.Option(
        [], "--arg", "-a", help="KEY=VALUE, typed by the tool's schema (repeatable)."
    ),
    input_: str | None = typer.Option(
        None, "--input", "-i", help="All arguments as a JSON object: JSON, @FILE, or - for stdin."
    ),
    state_ns: str | None = typer.Option(
        None, "--state-ns", help="State namespace (stateful tools): a separate /state."
    ),
    timeout: float | None = typer.Option(
        None, "--timeout", help="Wall-time limit in seconds (default: the tool's)."
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print one JSON object: ok, status, result, error, duration_ms."
    ),
    async_: bool = typer.Option(
        False, "--async", help="Queue it as a background job: print the job id and return at once."
    ),
) -> None:
    """Call a tool in its sandbox. Exit 0 ok, 1 tool failure, 2 bad arguments, 4 time / memory limit."""
    from toolforge.forge import raise_for_result
    from toolforge.spec import parse_arg_pairs

    with forge() as f:
        record = f.tool(ref)
        args = {**read_input(input_), **parse_arg_pairs(arg, record.spec)}
        if async_:
            from toolforge.cli.jobs import run_async

            return run_async(f, ref, args, state_ns=state_ns, timeout_s=timeout, json_out=json_out)
        with err_console().status(f"Running {escape(record.name)}…", spinner="dots") as status:
            result = f.call(
                ref,
                args,
                state_ns=state_ns,
                timeout_s=timeout,
                progress=lambda msg: status.update(escape(msg)),
            )
        if json_out:
            print_json(result.to_json())
            try:  # the same exit code as without --json, but the JSON is the only output
                raise_for_result(record, result, timeout)
            except ToolforgeError as e:
                raise typer.Exit(e.exit_code) from None
            return
        show_output(result.stdout, result.stderr)
        raise_for_result(record, result, timeout)
        print_result(result.result)


def read_input(value: str | None) -> dict[str, Any]:
    """``--input``: a JSON object given inline, from ``@FILE``, or from stdin (``-``)."""
    if value is None:
        return {}
    if value == "-":
        text, source = sys.stdin.read(), "stdin"
    elif value.startswith("@"):
        path = Path(value[1:])
        try:
            text, source = path.read_text(encoding="utf-8"), str(path)
        except OSError as e:
            raise UsageError(f"Cannot read --input file {path}: {e.strerror}") from e
    else:
        text, source = value, "--input"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(
            f"{source} is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})"
        ) from e
    if not isinstance(data, dict):
        raise UsageError(f'{source} must be a JSON object of arguments, e.g. {{"text": "hi"}}')
    return data


def show_output(stdout: str, stderr: str) -> None:
    """What the tool printed goes to stderr, so stdout holds only the result."""
    err = err_console()
    for name, text in (("stdout", stdout), ("stderr", stderr)):
        if text:
            err.print(f"[dim]── tool {name} ──[/]")
            err.print(escape(text.rstrip("\n")), highlight=False)


def print_result(value: Any) -> None:
    if isinstance(value, str):
        sys.stdout.write(value + ("" if value.endswith("\n") else "\n"))
        sys.stdout.flush()
    else:
        print_json(value)


def test(
    ref: str = typer.Argument(..., help="NAME or NAME@VERSION"),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Run a tool's tests in the sandbox and store the report. Exit 1 if any test fails."""
    with forge() as f:
        with err_console().status(f"Testing {escape(ref)}…", spinner="dots") as status:
            report = f.test(ref, progress=lambda msg: status.update(escape(msg)))
        if json_out:
            print_json(report.model_dump(mode="json"))
        else:
            rows = [
                [c.index + 1, c.kind, "✓" if c.passed else "✗", f"{c.duration_ms:.0f} ms", c.detail]
                for c in report.cases
            ]
            if rows:
                table(["#", "kind", "ok", "time", "detail"], rows)
            mark = "[green]✓[/]" if report.passed else "[red]✗[/]"
            console().print(
                f"{mark} {escape(report.tool)}@{report.version}: {report.summary} ({report.backend})"
            )
        if not report.passed:
            raise typer.Exit(1)
