"""The job store: a small interface, and its embedded SQLite (WAL) implementation.

Every state change is one short transaction, so any number of CLI processes and workers
can share the file. ``claim`` runs under ``BEGIN IMMEDIATE`` (SQLite's single writer
lock), which is what makes it atomic: a job moves from ``queued`` to ``running`` for
exactly one worker, and two jobs with the same ``serial_key`` (a stateful tool + state
namespace) are never running at once. A server database could replace this class by
implementing :class:`JobStore`.
"""

from __future__ import annotations

import builtins
import json
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from toolforge import db
from toolforge.errors import NotFoundError, UsageError
from toolforge.jobs.models import (
    FINISHED,
    Job,
    JobEvent,
    JobStatus,
    NewJob,
    Outcome,
    WorkerInfo,
    cap,
)

MIGRATIONS = [
    """
    CREATE TABLE jobs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        tool TEXT NOT NULL,
        version INTEGER NOT NULL,
        args TEXT NOT NULL,
        state_ns TEXT,
        serial_key TEXT,
        status TEXT NOT NULL,
        priority INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL DEFAULT 3,
        timeout_s REAL,
        result TEXT,
        error TEXT,
        stdout TEXT NOT NULL DEFAULT '',
        stderr TEXT NOT NULL DEFAULT '',
        truncated INTEGER NOT NULL DEFAULT 0,
        duration_ms REAL,
        queued_at REAL NOT NULL,
        run_after REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        worker_id TEXT,
        heartbeat_at REAL,
        cancel_requested INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX jobs_queue ON jobs (status, priority DESC, seq);
    CREATE INDEX jobs_serial ON jobs (serial_key, status);
    CREATE INDEX jobs_tool ON jobs (tool, seq);
    CREATE TABLE job_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL,
        at REAL NOT NULL,
        event TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX job_events_job ON job_events (job_id, seq);
    CREATE TABLE job_workers (
        id TEXT PRIMARY KEY,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        concurrency INTEGER NOT NULL,
        started_at REAL NOT NULL,
        heartbeat_at REAL NOT NULL,
        stopped_at REAL
    );
    """,
    "ALTER TABLE jobs ADD COLUMN meta TEXT NOT NULL DEFAULT '{}';",  # the run's container, warm or cold
]

_FINISHED_SQL = ",".join(f"'{s.value}'" for s in FINISHED)


def new_job_id() -> str:
    return uuid.uuid4().hex[:12]


class JobStore(ABC):
    """What the worker, the CLI and the Python API need from a job store."""

    @abstractmethod
    def submit(self, new: NewJob) -> Job: ...

    @abstractmethod
    def get(self, job_id: str) -> Job:
        """The job, or NotFoundError (exit 2)."""

    @abstractmethod
    def list(
        self, *, status: JobStatus | None = None, tool: str | None = None, limit: int = 100
    ) -> builtins.list[Job]: ...

    @abstractmethod
    def claim(self, worker_id: str) -> Job | None:
        """Atomically move the next runnable queued job to ``running`` for this worker."""

    @abstractmethod
    def heartbeat(self, worker_id: str, job_ids: Iterable[str]) -> None: ...

    @abstractmethod
    def finish(self, job_id: str, worker_id: str, outcome: Outcome) -> bool:
        """Record the outcome; False when the job is no longer this worker's (it was recovered)."""

    @abstractmethod
    def release(
        self,
        job_id: str,
        worker_id: str,
        reason: str,
        *,
        delay_s: float = 0.0,
        refund_attempt: bool = False,
    ) -> Job | None:
        """Put a running job back in the queue (or fail it when out of attempts)."""

    @abstractmethod
    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job at once; flag a running one for its worker; no-op when finished."""

    @abstractmethod
    def retry(self, job_id: str) -> Job:
        """Queue a failed / timed-out / cancelled job again, with fresh attempts (like ``rq requeue``)."""

    @abstractmethod
    def cancel_requested(self, job_ids: Iterable[str]) -> set[str]: ...

    @abstractmethod
    def recover(
        self, *, stale_after_s: float, is_dead: Callable[[str], bool]
    ) -> builtins.list[Job]:
        """Requeue (or fail, past max_attempts) running jobs whose worker is gone."""

    @abstractmethod
    def prune(self, older_than_s: float) -> int:
        """Delete finished jobs that ended more than ``older_than_s`` ago; return how many."""

    @abstractmethod
    def events(self, job_id: str, after: int = 0) -> builtins.list[JobEvent]: ...

    @abstractmethod
    def register_worker(self, worker_id: str, pid: int, host: str, concurrency: int) -> None: ...

    @abstractmethod
    def stop_worker(self, worker_id: str) -> None: ...

    @abstractmethod
    def workers(self) -> builtins.list[WorkerInfo]: ...

    @abstractmethod
    def counts(self) -> dict[str, int]: ...

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""


class SQLiteJobStore(JobStore):
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._conn = db.connect(self.path)
        self._lock = threading.Lock()  # one connection shared by a worker's threads
        db.migrate(self._conn, "jobs", MIGRATIONS)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """One write transaction, taken with the writer lock up front (no upgrade deadlocks)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> builtins.list[Any]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    @staticmethod
    def _event(
        conn: Any, job_id: str, event: str, detail: str = "", at: float | None = None
    ) -> None:
        conn.execute(
            "INSERT INTO job_events (job_id, at, event, detail) VALUES (?,?,?,?)",
            (job_id, at or time.time(), event, detail),
        )

    # -- submitting and reading ----------------------------------------------------
    def submit(self, new: NewJob) -> Job:
        job_id = new_job_id()
        now = time.time()
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO jobs (id, tool, version, args, state_ns, serial_key, status, priority,"
                " max_attempts, timeout_s, queued_at, run_after) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    job_id,
                    new.tool,
                    new.version,
                    json.dumps(new.args),
                    new.state_ns,
                    new.serial_key,
                    JobStatus.queued.value,
                    new.priority,
                    new.max_attempts,
                    new.timeout_s,
                    now,
                    now,
                ),
            )
            self._event(
                conn, job_id, "queued", f"{new.tool}@{new.version} priority {new.priority}", now
            )
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        rows = self._query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise NotFoundError("job", job_id, hint="See the jobs with: toolforge jobs list")
        return Job.from_row(rows[0])

    def list(
        self, *, status: JobStatus | None = None, tool: str | None = None, limit: int = 100
    ) -> builtins.list[Job]:
        where, params = [], []
        if status is not None:
            where.append("status = ?")
            params.append(JobStatus(status).value)
        if tool is not None:
            where.append("tool = ?")
            params.append(tool)
        sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY seq DESC LIMIT ?"
        return [Job.from_row(r) for r in self._query(sql, (*params, limit))]

    def counts(self) -> dict[str, int]:
        rows = self._query("SELECT status, COUNT(*) FROM jobs GROUP BY status")
        return {s.value: 0 for s in JobStatus} | {r[0]: r[1] for r in rows}

    def events(self, job_id: str, after: int = 0) -> builtins.list[JobEvent]:
        rows = self._query(
            "SELECT seq, job_id, at, event, detail FROM job_events WHERE job_id = ? AND seq > ? ORDER BY seq",
            (job_id, after),
        )
        return [JobEvent(*tuple(r)) for r in rows]

    # -- the worker's side -----------------------------------------------------------
    def claim(self, worker_id: str) -> Job | None:
        now = time.time()
        # An idle worker polls: look first without the writer lock, so polling never blocks submitters.
        if not self._query(
            "SELECT 1 FROM jobs WHERE status = 'queued' AND run_after <= ? LIMIT 1", (now,)
        ):
            return None
        with self._tx() as conn:
            row = conn.execute(
                "SELECT id, attempts FROM jobs j WHERE status = 'queued' AND run_after <= ?"
                " AND (serial_key IS NULL OR NOT EXISTS (SELECT 1 FROM jobs r"
                "      WHERE r.serial_key = j.serial_key AND r.status = 'running'))"
                " ORDER BY priority DESC, seq LIMIT 1",
                (now,),
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, worker_id = ?,"
                " started_at = ?, heartbeat_at = ? WHERE id = ?",
                (worker_id, now, now, row["id"]),
            )
            self._event(
                conn,
                row["id"],
                "started",
                f"attempt {row['attempts'] + 1} on worker {worker_id}",
                now,
            )
        return self.get(row["id"])

    def heartbeat(self, worker_id: str, job_ids: Iterable[str]) -> None:
        ids = list(job_ids)
        now = time.time()
        with self._tx() as conn:
            conn.execute("UPDATE job_workers SET heartbeat_at = ? WHERE id = ?", (now, worker_id))
            if ids:
                marks = ",".join("?" * len(ids))
                conn.execute(
                    f"UPDATE jobs SET heartbeat_at = ? WHERE worker_id = ? AND status = 'running' AND id IN ({marks})",
                    (now, worker_id, *ids),
                )

    def finish(self, job_id: str, worker_id: str, outcome: Outcome) -> bool:
        stdout, cut_out = cap(outcome.stdout)
        stderr, cut_err = cap(outcome.stderr)
        now = time.time()
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE jobs SET status = ?, result = ?, error = ?, stdout = ?, stderr = ?, truncated = ?,"
                " duration_ms = ?, finished_at = ?, heartbeat_at = ?, meta = ?"
                " WHERE id = ? AND status = 'running' AND worker_id = ?",
                (
                    outcome.status.value,
                    json.dumps(outcome.result),
                    json.dumps(outcome.error) if outcome.error else None,
                    stdout,
                    stderr,
                    int(outcome.truncated or cut_out or cut_err),
                    outcome.duration_ms,
                    now,
                    now,
                    json.dumps(outcome.meta, default=str),
                    job_id,
                    worker_id,
                ),
            )
            if cur.rowcount:
                detail = (outcome.error or {}).get("message", "") if outcome.error else ""
                self._event(conn, job_id, outcome.status.value, str(detail)[:500], now)
        return bool(cur.rowcount)

    def release(
        self,
        job_id: str,
        worker_id: str,
        reason: str,
        *,
        delay_s: float = 0.0,
        refund_attempt: bool = False,
    ) -> Job | None:
        with self._tx() as conn:
            row = conn.execute(
                "SELECT * FROM jobs WHERE id = ? AND status = 'running' AND worker_id = ?",
                (job_id, worker_id),
            ).fetchone()
            if row is None:
                return None
            self._requeue_or_fail(
                conn, Job.from_row(row), reason, delay_s=delay_s, refund=refund_attempt
            )
        return self.get(job_id)

    def _requeue_or_fail(
        self, conn: Any, job: Job, reason: str, *, delay_s: float = 0.0, refund: bool = False
    ) -> None:
        now = time.time()
        attempts = job.attempts - 1 if refund else job.attempts
        if job.cancel_requested:
            conn.execute(
                "UPDATE jobs SET status = 'cancelled', finished_at = ?, attempts = ?,"
                " error = ? WHERE id = ?",
                (
                    now,
                    attempts,
                    json.dumps({"type": "Cancelled", "message": f"cancelled ({reason})"}),
                    job.id,
                ),
            )
            self._event(conn, job.id, "cancelled", reason, now)
        elif attempts >= job.max_attempts:
            message = f"{reason}; gave up after {attempts} of {job.max_attempts} attempts"
            conn.execute(
                "UPDATE jobs SET status = 'failed', finished_at = ?, attempts = ?, error = ? WHERE id = ?",
                (now, attempts, json.dumps({"type": "WorkerLost", "message": message}), job.id),
            )
            self._event(conn, job.id, "failed", message, now)
        else:
            conn.execute(
                "UPDATE jobs SET status = 'queued', worker_id = NULL, started_at = NULL, heartbeat_at = NULL,"
                " attempts = ?, run_after = ? WHERE id = ?",
                (attempts, now + delay_s, job.id),
            )
            self._event(
                conn,
                job.id,
                "requeued",
                f"{reason} (attempt {attempts} of {job.max_attempts} used)",
                now,
            )

    def recover(
        self, *, stale_after_s: float, is_dead: Callable[[str], bool]
    ) -> builtins.list[Job]:
        now = time.time()
        with self._tx() as conn:
            rows = conn.execute("SELECT * FROM jobs WHERE status = 'running'").fetchall()
            lost = []
            for row in rows:
                job = Job.from_row(row)
                worker = job.worker_id or "?"
                if is_dead(worker):
                    reason = f"worker {worker} died"
                elif (job.heartbeat_at or 0) < now - stale_after_s:
                    reason = (
                        f"worker {worker} stopped heartbeating for more than {stale_after_s:g}s"
                    )
                else:
                    continue
                self._requeue_or_fail(conn, job, reason)
                lost.append(job.id)
            dead_workers = [
                r["id"]
                for r in conn.execute("SELECT id FROM job_workers WHERE stopped_at IS NULL")
                if is_dead(r["id"])
            ]
            for wid in dead_workers:
                conn.execute("UPDATE job_workers SET stopped_at = ? WHERE id = ?", (now, wid))
        return [self.get(i) for i in lost]

    def cancel_requested(self, job_ids: Iterable[str]) -> set[str]:
        ids = list(job_ids)
        if not ids:
            return set()
        marks = ",".join("?" * len(ids))
        rows = self._query(
            f"SELECT id FROM jobs WHERE cancel_requested = 1 AND id IN ({marks})", tuple(ids)
        )
        return {r[0] for r in rows}

    # -- the user's side --------------------------------------------------------------
    def cancel(self, job_id: str) -> Job:
        now = time.time()
        with self._tx() as conn:
            row = conn.execute(
                "SELECT status, cancel_requested FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            if row is None:
                raise NotFoundError("job", job_id, hint="See the jobs with: toolforge jobs list")
            if row["status"] == JobStatus.queued.value:
                conn.execute(
                    "UPDATE jobs SET status = 'cancelled', cancel_requested = 1, finished_at = ?, error = ?"
                    " WHERE id = ?",
                    (
                        now,
                        json.dumps({"type": "Cancelled", "message": "cancelled before it started"}),
                        job_id,
                    ),
                )
                self._event(conn, job_id, "cancelled", "cancelled while queued", now)
            elif row["status"] == JobStatus.running.value and not row["cancel_requested"]:
                conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
                self._event(conn, job_id, "cancel-requested", "the worker will kill the run", now)
        return self.get(job_id)

    def retry(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job.status not in (JobStatus.failed, JobStatus.timed_out, JobStatus.cancelled):
            raise UsageError(
                f"Job {job_id} is {job.status.value}; only failed, timed_out or cancelled jobs can be retried"
            )
        now = time.time()
        with self._tx() as conn:
            conn.execute(
                "UPDATE jobs SET status = 'queued', attempts = 0, result = NULL, error = NULL, stdout = '',"
                " stderr = '', truncated = 0, duration_ms = NULL, started_at = NULL, finished_at = NULL,"
                " worker_id = NULL, heartbeat_at = NULL, cancel_requested = 0, run_after = ?, meta = '{}'"
                " WHERE id = ? AND status = ?",
                (now, job_id, job.status.value),
            )
            self._event(conn, job_id, "retried", f"was {job.status.value}", now)
        return self.get(job_id)

    def prune(self, older_than_s: float) -> int:
        cutoff = time.time() - older_than_s
        with self._tx() as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    f"SELECT id FROM jobs WHERE status IN ({_FINISHED_SQL}) AND finished_at < ?",
                    (cutoff,),
                )
            ]
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                conn.execute(f"DELETE FROM job_events WHERE job_id IN ({marks})", chunk)
                conn.execute(f"DELETE FROM jobs WHERE id IN ({marks})", chunk)
            conn.execute(
                "DELETE FROM job_workers WHERE stopped_at IS NOT NULL AND stopped_at < ?", (cutoff,)
            )
        return len(ids)

    # -- workers ------------------------------------------------------------------------
    def register_worker(self, worker_id: str, pid: int, host: str, concurrency: int) -> None:
        now = time.time()
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO job_workers (id, pid, host, concurrency, started_at, heartbeat_at)"
                " VALUES (?,?,?,?,?,?)",
                (worker_id, pid, host, concurrency, now, now),
            )

    def stop_worker(self, worker_id: str) -> None:
        with self._tx() as conn:
            conn.execute(
                "UPDATE job_workers SET stopped_at = ? WHERE id = ?", (time.time(), worker_id)
            )

    def workers(self) -> builtins.list[WorkerInfo]:
        rows = self._query("SELECT * FROM job_workers ORDER BY started_at DESC")
        running = self._query("SELECT worker_id, id FROM jobs WHERE status = 'running'")
        by_worker: dict[str, list[str]] = {}
        for r in running:
            by_worker.setdefault(r[0], []).append(r[1])
        return [
            WorkerInfo(
                id=r["id"],
                pid=r["pid"],
                host=r["host"],
                concurrency=r["concurrency"],
                started_at=r["started_at"],
                heartbeat_at=r["heartbeat_at"],
                stopped_at=r["stopped_at"],
                running=by_worker.get(r["id"], []),
            )
            for r in rows
        ]
