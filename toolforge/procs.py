"""Is a process still alive? (pid + start time, so a recycled pid is not mistaken for it).

Shared by the job worker, the sandbox's orphan reaper and the local model server.

A worker id is ``<host>:<pid>:<start-ticks>``; on this host a worker is dead the moment its
process is gone (or is a zombie, or the pid now belongs to a process started later). For a
worker on another host only its heartbeat can tell.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

HOST = socket.gethostname()


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields[0] in ("Z", "X"):  # zombie / dead: killed, not yet reaped
        return None
    return int(fields[19])


def pid_alive(pid: int, start: int | None = None) -> bool:
    if Path("/proc/self/stat").exists():
        now_start = process_start(pid)
        return now_start is not None and (start is None or now_start == start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def make_worker_id(pid: int | None = None) -> str:
    pid = pid or os.getpid()
    return f"{HOST}:{pid}:{process_start(pid) or 0}"


def worker_dead_here(worker_id: str) -> bool:
    """True when ``worker_id`` names a process on this host that no longer runs."""
    parts = worker_id.split(":")
    if len(parts) < 3:
        return False
    host, pid_s, start_s = ":".join(parts[:-2]), parts[-2], parts[-1]
    if host != HOST or not pid_s.isdigit() or not start_s.isdigit():
        return False
    start = int(start_s) or None
    return not pid_alive(int(pid_s), start)
