"""The records of the job queue: a job, its status, a submission, an outcome, an event.

Timestamps are stored as UNIX seconds (floats) so the store can compare them cheaply;
``Job.to_json`` renders them as ISO-8601 UTC for people and scripts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any


class JobStatus(str, Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    timed_out = "timed_out"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset(
    {JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled, JobStatus.timed_out}
)

# ``toolforge jobs wait`` exits with the job's outcome (documented in the CLI help):
EXIT_CODES = {
    JobStatus.succeeded: 0,
    JobStatus.failed: 1,
    JobStatus.timed_out: 4,  # like every limit (LimitExceeded)
    JobStatus.cancelled: 5,  # not 130: that stays "you pressed Ctrl-C while waiting"
}
EXIT_WAIT_TIMEOUT = 124  # like coreutils `timeout`: still queued/running when --timeout passed

OUTPUT_CAP = 64 * 1024  # characters kept of a job's stdout and of its stderr


@dataclass
class NewJob:
    """What ``submit`` stores: a validated call of one pinned tool version."""

    tool: str
    version: int
    args: dict[str, Any]
    state_ns: str | None = None
    serial_key: str | None = None  # set for stateful tools: jobs sharing it never run at once
    priority: int = 0  # higher runs first
    timeout_s: float | None = None  # None: the tool's limits.timeout_s
    max_attempts: int = 3


@dataclass
class Outcome:
    """What a worker records when a run ends."""

    status: JobStatus
    result: Any = None
    error: dict[str, Any] | None = None
    stdout: str = ""
    stderr: str = ""
    truncated: bool = False
    duration_ms: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # where it ran: container, warm


@dataclass
class Job:
    id: str
    tool: str
    version: int
    args: dict[str, Any]
    status: JobStatus
    priority: int
    attempts: int
    max_attempts: int
    queued_at: float
    state_ns: str | None = None
    serial_key: str | None = None
    timeout_s: float | None = None
    result: Any = None
    error: dict[str, Any] | None = None
    stdout: str = ""
    stderr: str = ""
    truncated: bool = False
    duration_ms: float | None = None
    run_after: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    worker_id: str | None = None
    heartbeat_at: float | None = None
    cancel_requested: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status.finished

    @classmethod
    def from_row(cls, row: Any) -> Job:
        return cls(
            id=row["id"],
            tool=row["tool"],
            version=row["version"],
            args=json.loads(row["args"]),
            status=JobStatus(row["status"]),
            priority=row["priority"],
            attempts=row["attempts"],
            max_attempts=row["max_attempts"],
            queued_at=row["queued_at"],
            state_ns=row["state_ns"],
            serial_key=row["serial_key"],
            timeout_s=row["timeout_s"],
            result=json.loads(row["result"]) if row["result"] is not None else None,
            error=json.loads(row["error"]) if row["error"] is not None else None,
            stdout=row["stdout"],
            stderr=row["stderr"],
            truncated=bool(row["truncated"]),
            duration_ms=row["duration_ms"],
            run_after=row["run_after"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            worker_id=row["worker_id"],
            heartbeat_at=row["heartbeat_at"],
            cancel_requested=bool(row["cancel_requested"]),
            meta=json.loads(row["meta"] or "{}"),
        )

    def to_json(self, *, output: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "tool": self.tool,
            "version": self.version,
            "status": self.status.value,
            "args": self.args,
            "state_ns": self.state_ns,
            "priority": self.priority,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "timeout_s": self.timeout_s,
            "result": self.result,
            "error": self.error,
            "queued_at": iso(self.queued_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "duration_ms": self.duration_ms,
            "worker": self.worker_id,
            "cancel_requested": self.cancel_requested,
            "meta": self.meta,
        }
        if output:
            data.update(stdout=self.stdout, stderr=self.stderr, truncated=self.truncated)
        return data


@dataclass
class JobEvent:
    """One line of a job's life (submitted, started, requeued, cancel requested, finished …)."""

    seq: int
    job_id: str
    at: float
    event: str
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"at": iso(self.at), "event": self.event, "detail": self.detail}


@dataclass
class WorkerInfo:
    id: str
    pid: int
    host: str
    concurrency: int
    started_at: float
    heartbeat_at: float
    stopped_at: float | None = None
    alive: bool = False
    running: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pid": self.pid,
            "host": self.host,
            "concurrency": self.concurrency,
            "started_at": iso(self.started_at),
            "heartbeat_at": iso(self.heartbeat_at),
            "stopped_at": iso(self.stopped_at),
            "alive": self.alive,
            "running": self.running,
        }


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


def cap(text: str, limit: int = OUTPUT_CAP) -> tuple[str, bool]:
    """Keep at most ``limit`` characters (the head and the tail); say whether any were cut."""
    if len(text) <= limit:
        return text, False
    head = limit * 3 // 4
    tail = limit - head
    return f"{text[:head]}\n… [{len(text) - limit} characters cut] …\n{text[-tail:]}", True
