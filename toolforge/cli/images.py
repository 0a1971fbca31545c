"""``toolforge images build|list`` and ``toolforge gc``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.markup import escape

from toolforge.cli.render import console, err_console, print_json, success, table

images_app = typer.Typer(
    help="The sandbox base images (built offline with debootstrap).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(images_app, name="images")
    app.command("gc")(gc)


@contextmanager
def _status(enabled: bool) -> Iterator[Callable[[str], None]]:
    """A rich status line that shows the latest build step; silent when ``enabled`` is False."""
    if not enabled:
        yield lambda _msg: None
        return
    with err_console().status("starting …") as status:

        def say(msg: str) -> None:
            status.update(escape(msg[:120]))
            if not msg.startswith("Step "):
                err_console().print(f"  {escape(msg)}")

        yield say


@images_app.command("build")
def build(
    force: bool = typer.Option(
        False, "--force", help="Rebuild every base image, even when present."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Build the base image of each language (no-op when they are up to date)."""
    from toolforge.config import load_settings
    from toolforge.sandbox.images import build_base_images

    t0 = time.perf_counter()
    with _status(not json_out) as say:
        tags = build_base_images(load_settings(), force=force, progress=say)
    if json_out:
        print_json({"images": tags, "seconds": round(time.perf_counter() - t0, 2)})
    else:
        success(f"base images ready in {time.perf_counter() - t0:.1f}s: {', '.join(tags)}")


@images_app.command("list")
def list_(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List toolforge's images (base and tool images)."""
    from toolforge.config import load_settings
    from toolforge.sandbox.images import list_images

    rows = list_images(load_settings())
    if json_out:
        print_json(rows)
        return
    if not rows:
        console().print("No toolforge images. Build the base images with: toolforge images build")
        return
    table(
        ["tag", "kind", "tool", "size", "current"],
        [
            [
                r["tag"],
                r["kind"],
                r["tool"] or "",
                f"{r['size_mb']} MB",
                "" if r["current"] is None else ("yes" if r["current"] else "stale"),
            ]
            for r in rows
        ],
    )


def gc(
    prune_tools: bool = typer.Option(
        False, "--prune-tools", help="Also remove tool images no registered tool version uses."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Remove orphaned toolforge containers, unused scratch volumes and dangling images (never state)."""
    from toolforge.config import load_settings
    from toolforge.sandbox.images import gc as collect

    settings = load_settings()
    keep = _registered_tool_images(settings) if prune_tools else None
    counts = collect(settings, keep_tool_images=keep)
    if json_out:
        print_json(counts)
    else:
        success(", ".join(f"removed {n} {kind}" for kind, n in counts.items()))


def _registered_tool_images(settings) -> set[str]:  # noqa: ANN001 - Settings
    from toolforge.registry import Registry
    from toolforge.sandbox.build import tool_image_tag

    registry = Registry(settings.tools_dir, settings.db_path)
    try:
        keep = set()
        for record in registry.list():
            for version in registry.versions(record.name):
                keep.add(tool_image_tag(registry.get(record.name, version).bundle, settings))
        return keep
    finally:
        registry.close()
