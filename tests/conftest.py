"""Shared fixtures: an isolated TOOLFORGE_HOME per test, and the Docker gate.

Tests marked ``docker`` need a real engine. Outside CI they are skipped when none
answers; in CI (``CI=true``) a missing engine is a failure, never a silent skip.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# tests that import litellm directly must not make it fetch its cost map from the network
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "tools"

_docker_state: dict[str, object] = {}


def docker_available() -> tuple[bool, str]:
    if "ok" not in _docker_state:
        try:
            from toolforge.sandbox.docker_client import client

            client()
            _docker_state.update(ok=True, why="")
        except Exception as e:  # noqa: BLE001 - any failure means "no engine"
            _docker_state.update(ok=False, why=str(e).splitlines()[0])
    return bool(_docker_state["ok"]), str(_docker_state["why"])


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("docker") is None:
        return
    ok, why = docker_available()
    if ok:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true but the Docker engine is unavailable: {why}", pytrace=False)
    pytest.skip(f"Docker engine unavailable: {why}")


@pytest.fixture(scope="session", autouse=True)
def no_leftover_call_containers():
    """After the suite: zero toolforge call containers of this process (or of dead ones).

    Sandboxes still open are closed first, as at interpreter exit (their atexit hook)."""
    yield
    if not _docker_state.get("ok"):
        return
    import socket

    from toolforge.procs import pid_alive
    from toolforge.sandbox.docker_client import client
    from toolforge.sandbox.service import _close_all

    _close_all()
    host = socket.gethostname()
    left = []
    for c in client().api.containers(
        all=True, filters={"label": ["io.toolforge=1", "io.toolforge.kind=call"]}
    ):
        owner_host, _, pid = (c.get("Labels") or {}).get("io.toolforge.owner", "").rpartition(":")
        if (
            owner_host == host
            and pid.isdigit()
            and (int(pid) == os.getpid() or not pid_alive(int(pid)))
        ):
            left.append(f"{c['Names'][0]} ({c['Status']})")
    if left:
        pytest.fail(
            f"toolforge call containers left after the suite: {', '.join(left)}", pytrace=False
        )


@pytest.fixture(autouse=True)
def toolforge_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "tfhome"
    monkeypatch.setenv("TOOLFORGE_HOME", str(home))
    for var in (
        "TOOLFORGE_MODEL",
        "TOOLFORGE_API_BASE",
        "TOOLFORGE_API_KEY",
        "TOOLFORGE_BACKEND",
        "TOOLFORGE_DEBUG",
    ):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def example(tmp_path: Path):
    """Copy an example tool folder into tmp_path (so tests may change it) and return its path."""

    def copy(name: str) -> Path:
        dest = tmp_path / "src" / name
        shutil.copytree(EXAMPLES / name, dest)
        return dest

    return copy


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out!r}, err={self.err!r})"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run ``toolforge ARGS`` in-process through the real error boundary; return code/out/err."""
    from toolforge.cli.app import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
