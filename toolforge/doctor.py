"""``toolforge doctor``: check what toolforge needs, and say how to fix what is missing."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from toolforge.config import Settings
from toolforge.errors import ToolforgeError


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def run_checks(settings: Settings) -> list[Check]:
    checks: list[Callable[[Settings], Check]] = [
        check_home,
        check_docker,
        check_base_images,
        check_model,
    ]
    return [fn(settings) for fn in checks]


def check_home(settings: Settings) -> Check:
    try:
        settings.ensure_dirs()
        with tempfile.NamedTemporaryFile(dir=settings.home):
            pass
        return Check("TOOLFORGE_HOME", True, f"{settings.home} is writable")
    except OSError as e:
        return Check(
            "TOOLFORGE_HOME",
            False,
            f"{settings.home}: {e.strerror}",
            "Set TOOLFORGE_HOME to a writable folder.",
        )


def check_docker(settings: Settings) -> Check:
    if settings.backend == "local":
        from toolforge.sandbox.local_backend import describe

        return Check("sandbox backend", True, f"local backend selected — {describe()}")
    try:
        from toolforge.sandbox.docker_client import engine_version

        return Check("Docker engine", True, f"reachable, version {engine_version()}")
    except ToolforgeError as e:
        return Check(
            "Docker engine",
            False,
            e.message,
            "Run: make setup (installs and starts dockerd), or start dockerd yourself.",
        )


def check_base_images(settings: Settings) -> Check:
    if settings.backend == "local":
        return Check("base images", True, "not needed by the local backend")
    try:
        from toolforge.sandbox.images import missing_base_images

        missing = missing_base_images(settings)
    except (ToolforgeError, ImportError) as e:
        return Check("base images", False, str(e).splitlines()[0], "Run: toolforge images build")
    if missing:
        return Check(
            "base images", False, f"missing: {', '.join(missing)}", "Run: toolforge images build"
        )
    return Check("base images", True, "python, typescript and bash base images present")


def check_model(settings: Settings) -> Check:
    if settings.model or os.environ.get("TOOLFORGE_MODEL"):
        return Check(
            "model", True, f"{settings.model} (api base: {settings.api_base or 'provider default'})"
        )
    try:
        from toolforge.llm.local import local_model_status

        status = local_model_status(settings)
    except (ToolforgeError, ImportError) as e:
        return Check(
            "model",
            False,
            f"no model configured and the embedded model is unavailable: {e}",
            "Run: make setup, or set TOOLFORGE_MODEL.",
        )
    return Check(
        "model",
        status.ok,
        status.detail,
        ""
        if status.ok
        else "Run: make setup (installs the embedded model), or set TOOLFORGE_MODEL.",
    )
