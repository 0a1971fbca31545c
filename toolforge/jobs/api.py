"""The Python face of the queue: ``submit`` and :class:`JobHandle` (what ``Forge.submit`` returns).

job = forge.submit("word-count", {"text": "a b c"})
job.wait(timeout=30)          # -> Job snapshot; JobWaitTimeout if still unfinished
job.result()                  # the tool's result, or ToolFailed / ToolTimeout / JobCancelled
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from toolforge.errors import (
    JobCancelled,
    JobWaitTimeout,
    ToolFailed,
    ToolTimeout,
    UsageError,
)
from toolforge.jobs.models import Job, JobEvent, JobStatus, NewJob
from toolforge.sandbox.state import check_call_ns
from toolforge.spec import validate_args

if TYPE_CHECKING:
    from toolforge.jobs.store import JobStore
    from toolforge.registry import Registry


class JobHandle:
    """A submitted job, by id. Every call reads the store afresh (the job lives in a worker)."""

    def __init__(self, store: JobStore, job_id: str) -> None:
        self._store = store
        self.id = job_id

    def __repr__(self) -> str:
        return f"JobHandle({self.id!r})"

    def info(self) -> Job:
        """A snapshot of the whole job record."""
        return self._store.get(self.id)

    def status(self) -> str:
        return self.info().status.value

    def wait(
        self,
        timeout: float | None = None,
        *,
        poll_s: float = 0.01,
        on_poll: Callable[[Job], None] | None = None,
    ) -> Job:
        """Block until the job finished; return its final record (JobWaitTimeout past ``timeout``).

        ``on_poll`` sees every snapshot read while waiting (the CLI's spinner uses it).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = poll_s
        while True:
            job = self.info()
            if job.finished:
                return job
            if on_poll is not None:
                on_poll(job)
            if deadline is not None and time.monotonic() >= deadline:
                raise JobWaitTimeout(self.id, job.status.value, timeout or 0)
            time.sleep(
                delay if deadline is None else max(0.0, min(delay, deadline - time.monotonic()))
            )
            delay = min(delay * 1.2, 0.2)

    def result(self, timeout: float | None = None) -> Any:
        """Wait, then return the tool's result or raise what a synchronous call would have raised."""
        job = self.wait(timeout)
        return result_of(job)

    def cancel(self) -> str:
        """Cancel (queued: at once; running: its container is killed); return the status now."""
        return self._store.cancel(self.id).status.value

    def retry(self) -> str:
        """Queue a failed / timed-out / cancelled job again (fresh attempts); return the status now."""
        return self._store.retry(self.id).status.value

    def logs(self) -> dict[str, str]:
        """The run's captured stdout and stderr (empty until it finished)."""
        job = self.info()
        return {"stdout": job.stdout, "stderr": job.stderr}

    def events(self, after: int = 0) -> list[JobEvent]:
        """The job's life so far: queued, started, requeued, cancel-requested, finished …"""
        return self._store.events(self.id, after)


def result_of(job: Job) -> Any:
    error = job.error or {}
    if job.status is JobStatus.succeeded:
        return job.result
    if job.status is JobStatus.timed_out:
        raise ToolTimeout(job.tool, job.timeout_s or _timeout_from(error))
    if job.status is JobStatus.cancelled:
        raise JobCancelled(job.id)
    raise ToolFailed(
        job.tool,
        str(error.get("type", "Error")),
        str(error.get("message", "")),
        str(error.get("traceback", "")),
    )


def _timeout_from(error: dict[str, Any]) -> float:
    match = re.search(r"limit of ([0-9.]+)s", str(error.get("message", "")))
    return float(match.group(1)) if match else 0.0


def submit(
    store: JobStore,
    registry: Registry,
    ref: str,
    args: dict[str, Any] | None = None,
    *,
    state_ns: str | None = None,
    priority: int = 0,
    timeout_s: float | None = None,
    max_attempts: int = 3,
) -> JobHandle:
    """Validate the tool and its arguments now (bad input never reaches the queue), then enqueue."""
    record = registry.resolve(ref)
    args = validate_args(record.spec, args or {})
    check_call_ns(record.spec, state_ns)
    if timeout_s is not None and not 0 < timeout_s <= 3600:
        raise UsageError(f"Bad timeout {timeout_s!r}: expected seconds in (0, 3600]")
    if not 1 <= max_attempts <= 100:
        raise UsageError(f"Bad max_attempts {max_attempts!r}: expected 1 to 100")
    serial_key = f"{record.name}/{state_ns or ''}" if record.spec.stateful else None
    job = store.submit(
        NewJob(
            tool=record.name,
            version=record.version,
            args=args,
            state_ns=state_ns,
            serial_key=serial_key,
            priority=int(priority),
            timeout_s=timeout_s,
            max_attempts=max_attempts,
        )
    )
    return JobHandle(store, job.id)
