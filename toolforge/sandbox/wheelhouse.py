"""Host-side dependency fetching: containers cannot reach PyPI or npm, the host can.

``pip_wheels`` runs ``pip download`` for the image's Python (Debian bookworm: CPython 3.11,
manylinux) into a cached wheelhouse folder; the image installs from it with ``--no-index``.
``npm_modules`` runs ``npm install`` on the host into a cached folder whose ``node_modules``
is copied into the image. Each cache entry is keyed by the exact dependency list and
published by an atomic rename, so an interrupted download never leaves a half entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from toolforge.config import Settings
from toolforge.errors import DependencyError, EnvironmentUnavailable
from toolforge.sandbox.backend import Progress

# The interpreter inside the python base image (Debian bookworm's python3).
IMAGE_PYTHON_VERSION = "3.11"
MANYLINUX = ("manylinux2014", "manylinux_2_28", "manylinux_2_34")


def _machine() -> str:
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def _cached(
    settings: Settings, kind: str, key_parts: list[str], marker: str, fill: Callable[[Path], None]
) -> Path:
    """The cache entry for ``key_parts``; made by ``fill(tmp_dir)`` and an atomic rename if absent.

    ``marker`` is the file or folder a complete entry holds. A failing ``fill`` leaves nothing.
    """
    key = hashlib.sha256(json.dumps([kind, *key_parts]).encode()).hexdigest()[:16]
    final = settings.cache_dir / kind / key
    if (final / marker).exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
    try:
        fill(tmp)
        os.replace(tmp, final)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (final / marker).exists():  # not just another process publishing it first
            raise EnvironmentUnavailable(f"Cannot write the dependency cache {final}: {e}") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)


def pip_wheels(
    requirements: list[str], settings: Settings, *, progress: Progress | None = None
) -> Path:
    """A folder holding wheels for ``requirements`` (and their deps) plus ``requirements.txt``."""
    platforms = [f"{tag}_{_machine()}" for tag in MANYLINUX]

    def fill(tmp: Path) -> None:
        if progress:
            progress(f"pip download {' '.join(requirements)}")
        proc = _run([
            sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
            "--only-binary=:all:", "--python-version", IMAGE_PYTHON_VERSION, "--implementation", "cp",
            *[arg for p in platforms for arg in ("--platform", p)], "--dest", str(tmp), *requirements,
        ])  # fmt: skip
        if proc.returncode != 0:
            raise _pip_error(requirements, proc.stderr or proc.stdout)
        (tmp / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")

    key = [IMAGE_PYTHON_VERSION, *platforms, *sorted(requirements)]
    return _cached(settings, "wheelhouse", key, "requirements.txt", fill)


def _pip_error(requirements: list[str], output: str) -> DependencyError:
    match = re.search(
        r"(?:No matching distribution found for|satisfies the requirement) (\S+)", output
    )
    name = match.group(1) if match else ", ".join(requirements)
    errors = [line for line in output.splitlines() if line.startswith("ERROR")]
    detail = "; ".join(errors[-2:]) or output.strip()[-400:] or "pip download failed"
    if "satisfies the requirement" in output or "No matching distribution" in output:
        detail = (
            f"no wheel for CPython {IMAGE_PYTHON_VERSION} on Linux on PyPI "
            f"(the sandbox installs binary wheels only). pip said: {detail}"
        )
    return DependencyError("pip", name, detail)


def npm_modules(
    packages: list[str], settings: Settings, *, progress: Progress | None = None
) -> Path:
    """A folder whose ``node_modules`` holds ``packages`` installed on the host (no install scripts)."""
    npm = shutil.which("npm")
    if npm is None:
        raise EnvironmentUnavailable(
            "npm is not installed on this machine, so npm dependencies cannot be fetched",
            hint="Install it (apt-get install npm) or drop the npm dependencies.",
        )

    def fill(tmp: Path) -> None:
        if progress:
            progress(f"npm install {' '.join(packages)}")
        (tmp / "package.json").write_text('{"private": true}\n', encoding="utf-8")
        proc = _run([
            npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--omit=dev",
            "--no-package-lock", "--prefix", str(tmp), *packages,
        ])  # fmt: skip
        if proc.returncode != 0 or not (tmp / "node_modules").is_dir():
            raise _npm_error(packages, proc.stderr or proc.stdout)

    return _cached(settings, "npm", sorted(packages), "node_modules", fill)


def _npm_error(packages: list[str], output: str) -> DependencyError:
    match = re.search(
        r"'([^']+?)(?:@[^@']*)?' is not in (?:this|the npm) registry", output
    ) or re.search(r"404 Not Found - GET \S+/(@?[^\s/]+(?:%2f[^\s/]+)?)", output)
    name = match.group(1).replace("%2f", "/") if match else ", ".join(packages)
    lines = [re.sub(r"^npm (?:error|ERR!)\s*", "", ln).strip() for ln in output.splitlines()]
    useful = [ln for ln in lines if "not found" in ln.lower() or "not be found" in ln.lower()]
    detail = (useful or [ln for ln in lines if ln and ln != "404"][-3:] or ["npm install failed"])[
        0
    ]
    return DependencyError("npm", name, f"npm install failed: {detail}")
