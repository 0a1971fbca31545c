"""The sandbox backend interface and the small objects it returns.

A backend turns a :class:`ToolBundle` into something runnable (``prepare``: for Docker,
an image) and starts *sessions*: one running runner (a container, or a host process for
the local backend) that loads the tool once and serves calls over the framed JSON
protocol (see ``protocol.py``). Backends are picked by name from ``BACKENDS``.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from toolforge.spec import ToolBundle

Progress = Callable[[str], None]


class CallStatus(str, Enum):
    ok = "ok"  # the tool returned a result
    error = "error"  # the tool raised / exited non-zero (the runner reported it)
    timeout = "timeout"  # wall-time limit hit; the work was killed
    oom = "oom"  # memory limit hit; the container was OOM-killed
    crashed = "crashed"  # the runner died without answering (signal, pids limit, protocol error)
    cancelled = "cancelled"  # the caller cancelled the call; the work was killed


@dataclass
class CallResult:
    """The outcome of one call, as the runner (or the backend, for kills) reported it."""

    status: CallStatus
    result: Any = None
    error: dict[str, Any] | None = None  # {type, message, traceback}
    stdout: str = ""
    stderr: str = ""
    duration_ms: float = 0.0
    truncated: bool = False
    meta: dict[str, Any] = field(default_factory=dict)  # backend details (container id, exit code…)

    @property
    def ok(self) -> bool:
        return self.status is CallStatus.ok

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "status": self.status.value,
            "result": self.result,
            "error": self.error,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "duration_ms": round(self.duration_ms, 3),
            "truncated": self.truncated,
        }


class Session(ABC):
    """One live runner for one tool (and one state namespace, when stateful)."""

    reusable: bool = True  # False once a call timed out / crashed: the pool discards it

    @abstractmethod
    def call(
        self, args: dict[str, Any], *, timeout_s: float, cancel: threading.Event | None = None
    ) -> CallResult:
        """Send one call and wait for its answer; kill the work when ``timeout_s`` passes
        or ``cancel`` is set."""

    @abstractmethod
    def close(self) -> None:
        """Stop and remove everything this session made (idempotent)."""

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Backend(ABC):
    name: str = "abstract"
    isolated: bool = True

    @abstractmethod
    def prepare(self, bundle: ToolBundle, *, progress: Progress | None = None) -> str:
        """Make the tool runnable (build its image); return an id (image tag). Idempotent."""

    @abstractmethod
    def start(
        self,
        bundle: ToolBundle,
        *,
        state_ns: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> Session:
        """Start a runner for the tool (after ``prepare``); ``labels`` mark what it creates."""

    def reap_orphans(self) -> int:
        """Remove what dead toolforge processes left behind; return how many objects."""
        return 0

    def available(self) -> bool:
        """Can the backend run calls right now? (False while the Docker engine is down.)"""
        return True

    def close(self) -> None:  # noqa: B027 - optional hook: most backends hold nothing
        """Release backend resources."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
