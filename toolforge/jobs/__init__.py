"""Durable background jobs: a SQLite queue, a worker process, and the handle callers hold."""

from toolforge.jobs.api import JobHandle, result_of, submit
from toolforge.jobs.models import (
    EXIT_CODES,
    EXIT_WAIT_TIMEOUT,
    Job,
    JobEvent,
    JobStatus,
    NewJob,
    Outcome,
)
from toolforge.jobs.store import JobStore, SQLiteJobStore

__all__ = [
    "EXIT_CODES",
    "EXIT_WAIT_TIMEOUT",
    "Job",
    "JobEvent",
    "JobHandle",
    "JobStatus",
    "JobStore",
    "NewJob",
    "Outcome",
    "SQLiteJobStore",
    "result_of",
    "submit",
]
