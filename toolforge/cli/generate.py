"""``toolforge generate "REQUIREMENT"``: have the model write, test and register a tool."""

from __future__ import annotations

from typing import Any

import typer

from toolforge.cli import render

LANGUAGES = ("python", "typescript", "bash")


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)


def generate(
    requirement: str = typer.Argument(..., help="What the tool should do, in plain words."),
    lang: str = typer.Option("python", "--lang", "-l", help="python | typescript | bash"),
    name: str = typer.Option(None, "--name", "-n", help="Tool name (default: the model's choice)."),
    model: str = typer.Option(
        None,
        "--model",
        "-m",
        help="litellm model string (default: TOOLFORGE_MODEL, config, or the embedded local model).",
    ),
    attempts: int = typer.Option(
        3, "--attempts", min=1, max=20, help="Rounds of repair + fresh drafts."
    ),
    candidates: int = typer.Option(
        2, "--candidates", min=1, max=10, help="Drafts per round (1 repair + fresh samples)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable result."),
) -> None:
    """Write a tool from a requirement: draft → static checks → sandbox build + tests → repair → register."""
    from toolforge.errors import SynthesisFailed, UsageError

    if lang not in LANGUAGES:
        raise UsageError(f"Unknown language {lang!r}", hint=f"Use --lang {' | '.join(LANGUAGES)}")
    with render.forge() as forge, _Progress(enabled=not as_json) as progress:
        try:
            result = forge.generate(
                requirement,
                language=lang,
                name=name,
                model=model,
                attempts=attempts,
                candidates=candidates,
                progress=progress,
            )
        except SynthesisFailed as e:
            if as_json and e.result is not None:
                render.print_json(e.result.to_json())
                raise typer.Exit(e.exit_code) from None
            raise
    if as_json:
        render.print_json(result.to_json())
    else:
        render.success(result.summary())
        render.console().print(
            f"  try: toolforge run {result.name} --arg …   (see: toolforge show {result.name})"
        )


class _Progress:
    """Rich status line (stage, attempt, elapsed) on stderr, plus one line per finished step."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.status: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            self.status = render.err_console().status("starting", spinner="dots")
            self.status.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status is not None:
            self.status.__exit__(*exc)

    def __call__(self, event: Any) -> None:
        if not self.enabled:
            return
        from rich.markup import escape

        where = f"attempt {event.attempt} · draft {event.candidate}"
        text = f"[bold]{event.stage}[/] {where} · {escape(event.message)} · {event.elapsed_s:.1f}s"
        if self.status is not None:
            self.status.update(text)
        if event.stage in ("test", "check", "build") and not event.message.startswith(
            ("running", "building", "static checks")
        ):
            mark = (
                "[green]✓[/]"
                if "passed" in event.message and _all_passed(event.message)
                else "[yellow]✗[/]"
            )
            render.err_console().print(
                f"{mark} {where}: {escape(event.message)} [dim]({event.elapsed_s:.1f}s)[/]"
            )
        elif event.stage == "draft" and "unusable" in event.message:
            render.err_console().print(f"[yellow]✗[/] {where}: {escape(event.message)}")


def _all_passed(message: str) -> bool:
    """'tests 3/3 passed' → True."""
    try:
        ok, total = message.split()[1].split("/")
        return ok == total
    except (IndexError, ValueError):
        return False
