"""Helpers for the sandbox tests: tool folders written into tmp dirs, and cleanup of what
the Docker backend created (tool images, state volumes)."""

from __future__ import annotations

import contextlib
import textwrap
import uuid
from pathlib import Path
from typing import Any

import yaml

from toolforge.spec import ToolBundle, load_tool_dir

MAIN = {"python": "main.py", "typescript": "main.ts", "bash": "main.sh"}


def write_tool(
    root: Path,
    name: str,
    language: str,
    source: str,
    *,
    parameters: dict[str, Any] | None = None,
    tests: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> ToolBundle:
    """Write a tool folder under ``root`` and load it (validated like any user tool)."""
    folder = root / f"{name}-{uuid.uuid4().hex[:6]}"
    folder.mkdir(parents=True)
    data = {
        "name": name,
        "description": f"test tool {name}",
        "language": language,
        "parameters": parameters or {"type": "object", "properties": {}},
        "tests": tests or [],
        **spec,
    }
    (folder / "tool.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    (folder / MAIN[language]).write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")
    return load_tool_dir(folder)


def docker_cleanup(images: list[str], volumes: list[str]) -> None:
    """Remove tool images and state volumes a test run created (errors ignored: best effort,
    the leftover check in conftest is the judge for containers)."""
    from toolforge.sandbox.docker_client import client

    api = client().api
    for name in volumes:
        with contextlib.suppress(Exception):
            api.remove_volume(name, force=True)
    for tag in images:
        with contextlib.suppress(Exception):
            api.remove_image(tag, force=False, noprune=False)


def call_containers(tool: str | None = None) -> list[dict[str, Any]]:
    """Toolforge call containers (running or not), optionally of one tool."""
    from toolforge.sandbox.docker_client import client

    labels = ["io.toolforge=1", "io.toolforge.kind=call"] + (
        [f"io.toolforge.tool={tool}"] if tool else []
    )
    return client().api.containers(all=True, filters={"label": labels})
