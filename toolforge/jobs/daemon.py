"""The background worker: start one detached, stop it, report on it.

``start`` spawns ``python -m toolforge.jobs`` in a new session (it survives the CLI that
started it), with its pid in ``run/worker.pid`` and its output in ``logs/worker.log``
under TOOLFORGE_HOME. A file lock makes two concurrent ``run --async`` start one worker,
not two. The pid file holds the process start time too, so a recycled pid is not mistaken
for the worker.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from toolforge.config import Settings
from toolforge.errors import ToolforgeError
from toolforge.procs import pid_alive, process_start, worker_dead_here

_children: list[subprocess.Popen[bytes]] = []  # kept so Python reaps them (no zombies, no warnings)


def pid_file(settings: Settings) -> Path:
    return settings.run_dir / "worker.pid"


def log_file(settings: Settings) -> Path:
    return settings.log_dir / "worker.log"


def running_pid(settings: Settings) -> int | None:
    """The pid of the detached worker of this TOOLFORGE_HOME, when it is alive."""
    for child in _children:
        child.poll()
    try:
        pid_s, _, start_s = pid_file(settings).read_text().strip().partition(" ")
        pid, start = int(pid_s), int(start_s or 0) or None
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid, start) else None


def start(
    settings: Settings, *, concurrency: int | None = None, wait_s: float = 10.0
) -> tuple[int, bool]:
    """Start the detached worker unless one runs; return (pid, started). ``wait_s`` 0: do not wait."""
    settings.ensure_dirs()
    with open(settings.run_dir / "worker.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        pid = running_pid(settings)
        if pid is not None:
            return pid, False
        cmd = [sys.executable, "-m", "toolforge.jobs"]
        if concurrency:
            cmd += ["--concurrency", str(concurrency)]
        env = {**os.environ, "TOOLFORGE_HOME": str(settings.home)}
        with open(log_file(settings), "ab") as out:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(settings.home),
                start_new_session=True,
                close_fds=True,
            )
        _children.append(proc)
        pid_file(settings).write_text(f"{proc.pid} {process_start(proc.pid) or 0}\n")
    if wait_s > 0:
        _wait_ready(settings, proc, wait_s)
    return proc.pid, True


def _wait_ready(settings: Settings, proc: subprocess.Popen[bytes], wait_s: float) -> None:
    from toolforge.jobs.store import SQLiteJobStore

    store = SQLiteJobStore(settings.db_path)
    try:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ToolforgeError(
                    f"The worker exited at start (code {proc.returncode})\n{_tail(log_file(settings))}",
                    hint=f"See the whole log: {log_file(settings)}",
                )
            if any(w.pid == proc.pid and w.stopped_at is None for w in store.workers()):
                return
            time.sleep(0.05)
    finally:
        store.close()


def stop(settings: Settings, *, timeout_s: float = 30.0) -> int | None:
    """SIGTERM the detached worker (it finishes or requeues its jobs), SIGKILL after ``timeout_s``."""
    pid = running_pid(settings)
    if pid is None:
        pid_file(settings).unlink(missing_ok=True)
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and running_pid(settings) == pid:
        time.sleep(0.05)
    if running_pid(settings) == pid:
        os.kill(pid, signal.SIGKILL)  # its jobs are recovered by the next worker
        time.sleep(0.1)
    pid_file(settings).unlink(missing_ok=True)
    for child in _children:
        child.poll()
    return pid


def status(settings: Settings, store: Any) -> dict[str, Any]:
    """The detached worker, every registered worker (alive or not) and the queue counts."""
    from toolforge.jobs.worker import STALE_AFTER_S

    workers = []
    for w in store.workers():
        w.alive = (
            w.stopped_at is None
            and not worker_dead_here(w.id)
            and time.time() - w.heartbeat_at < STALE_AFTER_S
        )
        workers.append(w.to_json())
    return {
        "daemon": {
            "pid": running_pid(settings),
            "pid_file": str(pid_file(settings)),
            "log": str(log_file(settings)),
        },
        "workers": workers,
        "jobs": store.counts(),
    }


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
