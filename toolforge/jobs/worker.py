"""The worker: claims queued jobs, runs them in the sandbox, heartbeats, records outcomes.

One process, ``concurrency`` slots (threads; the work itself runs in containers). A
monitor thread heartbeats the running jobs every ``heartbeat_s``, turns a cancel request
into the job's cancel Event within ``cancel_check_s`` (the sandbox then kills the
container), and every ``recover_every_s`` requeues jobs whose worker died — so a crashed
worker's jobs are picked up by any live worker, not only by one started later. On start
the worker does that recovery first and removes the dead workers' containers.

Delivery is at-least-once, like Celery with ``acks_late``: a job whose worker vanished
runs again (attempts + 1) until ``max_attempts``, then fails with the reason.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from toolforge.errors import EnvironmentUnavailable, ToolforgeError
from toolforge.jobs.models import Job, JobStatus, Outcome
from toolforge.procs import HOST, make_worker_id, worker_dead_here

if TYPE_CHECKING:
    from toolforge.forge import Forge
    from toolforge.registry import ToolRecord

log = logging.getLogger("toolforge.jobs")

# The worker's containers carry its id. Not the job id: the warm pool keys sessions by their
# labels, so a per-job label would make every job start a cold container.
WORKER_LABEL = "io.toolforge.worker"
STALE_AFTER_S = 15.0  # a running job unheard of for this long is taken back (its worker is lost)
RETRY_DELAY_S = 5.0  # before a job that met an unavailable environment (Docker down) runs again


def default_concurrency() -> int:
    return max(2, os.cpu_count() or 2)


class Worker:
    def __init__(
        self,
        forge: Forge,
        *,
        concurrency: int | None = None,
        poll_s: float = 0.02,
        heartbeat_s: float = 1.0,
        stale_after_s: float = STALE_AFTER_S,
        cancel_check_s: float = 0.25,
        recover_every_s: float = 5.0,
        shutdown_grace_s: float = 10.0,
    ) -> None:
        self.forge = forge
        self.store = forge.jobs
        self.concurrency = concurrency or default_concurrency()
        if self.concurrency < 1:
            raise ToolforgeError("--concurrency must be at least 1")
        self.poll_s = poll_s
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self.cancel_check_s = cancel_check_s
        self.recover_every_s = recover_every_s
        self.shutdown_grace_s = shutdown_grace_s
        self.id = make_worker_id()
        self.completed = 0
        self._stopping = threading.Event()
        self._shutting_down = False  # a cancel now means "worker stopping", not "user cancelled"
        self._freed = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[str, threading.Event] = {}
        self._records: dict[tuple[str, int], ToolRecord] = {}

    # -- lifecycle --------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to stop claiming and shut down (running jobs get ``shutdown_grace_s``)."""
        self._stopping.set()
        self._freed.set()

    def recover(self) -> list[Job]:
        """Requeue / fail the jobs of dead workers and remove their orphaned containers."""
        lost = self.store.recover(stale_after_s=self.stale_after_s, is_dead=worker_dead_here)
        for job in lost:
            log.warning("job %s: %s → %s", job.id, "worker lost", job.status.value)
        return lost

    def reap(self) -> int:
        try:
            removed = self.forge.sandbox.reap_orphans()
        except ToolforgeError as e:
            log.warning("could not reap orphaned containers: %s", e)
            return 0
        if removed:
            log.info("removed %d orphaned container(s)", removed)
        return removed

    def run(self, *, until_idle: bool = False) -> int:
        """Work until ``stop()`` (or SIGTERM / Ctrl-C); with ``until_idle`` return when the queue is empty."""
        self.store.register_worker(self.id, os.getpid(), HOST, self.concurrency)
        self._install_signals()
        log.info("worker %s started with %d slot(s)", self.id, self.concurrency)
        self.recover()
        self.reap()
        monitor = threading.Thread(target=self._monitor, name="jobs-monitor", daemon=True)
        monitor.start()
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="jobs-slot")
        try:
            while not self._stopping.is_set():
                claimed = self._fill_slots(pool)
                if until_idle and not claimed and not self._running:
                    break
                self._freed.wait(self.poll_s)
                self._freed.clear()
        finally:
            self._shutdown(pool)
            monitor.join(timeout=5)
            self.store.stop_worker(self.id)
            log.info("worker %s stopped after %d job(s)", self.id, self.completed)
        return self.completed

    def _fill_slots(self, pool: ThreadPoolExecutor) -> int:
        claimed = 0
        while not self._stopping.is_set():
            with self._lock:
                if len(self._running) >= self.concurrency:
                    break
                job = self.store.claim(self.id)
                if job is None:
                    break
                self._running[job.id] = threading.Event()
            claimed += 1
            pool.submit(self._run_job, job)
        return claimed

    def _shutdown(self, pool: ThreadPoolExecutor) -> None:
        self._stopping.set()
        deadline = time.monotonic() + self.shutdown_grace_s
        while self._running and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._lock:
            self._shutting_down = True
            for event in self._running.values():
                event.set()  # the sandbox kills the runs; _run_job puts them back in the queue
        pool.shutdown(wait=True)

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum: int, frame: Any) -> None:
            if self._stopping.is_set():
                self.shutdown_grace_s = 0  # a second signal: stop the running jobs now
            log.info("signal %d: stopping (running jobs get %gs)", signum, self.shutdown_grace_s)
            self.stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    # -- the monitor thread -------------------------------------------------------------
    def _monitor(self) -> None:
        last_beat = last_recover = time.monotonic()
        while not (self._stopping.is_set() and not self._running):
            time.sleep(self.cancel_check_s)
            try:
                with self._lock:
                    ids = list(self._running)
                for job_id in self.store.cancel_requested(ids):
                    with self._lock:
                        event = self._running.get(job_id)
                    if event is not None and not event.is_set():
                        log.info("job %s: cancel requested, killing its run", job_id)
                        event.set()
                now = time.monotonic()
                if now - last_beat >= self.heartbeat_s:
                    self.store.heartbeat(self.id, ids)
                    last_beat = now
                if now - last_recover >= self.recover_every_s and not self._stopping.is_set():
                    if self.recover():
                        self.reap()
                    last_recover = now
            except Exception:  # noqa: BLE001 - the monitor must outlive a busy database
                log.exception("monitor pass failed; retrying")

    # -- one job ---------------------------------------------------------------------------
    def _record(self, job: Job) -> ToolRecord:
        key = (job.tool, job.version)
        with self._lock:
            if key not in self._records:
                self._records[key] = self.forge.registry.get(job.tool, job.version)
            return self._records[key]

    def _run_job(self, job: Job) -> None:
        cancel = self._running[job.id]
        log.info("job %s: %s@%d attempt %d", job.id, job.tool, job.version, job.attempts)
        try:
            outcome = self._execute(job, cancel)
        except EnvironmentUnavailable as e:
            log.warning("job %s: %s; retrying in %gs", job.id, e.message, RETRY_DELAY_S)
            # Not the job's fault: it waits (attempt refunded) until the engine is back.
            self.store.release(
                job.id, self.id, e.message, delay_s=RETRY_DELAY_S, refund_attempt=True
            )
            outcome = None
        except ToolforgeError as e:
            outcome = Outcome(JobStatus.failed, error={"type": type(e).__name__, "message": str(e)})
        except Exception as e:  # noqa: BLE001 - a bug must fail the job, not kill the slot
            log.exception("job %s: internal error", job.id)
            outcome = Outcome(
                JobStatus.failed,
                error={"type": "InternalError", "message": f"{type(e).__name__}: {e}"},
            )
        try:
            if outcome is None:
                pass
            elif (
                outcome.status is JobStatus.cancelled
                and self._shutting_down
                and not self._user_cancelled(job.id)
            ):
                self.store.release(job.id, self.id, "the worker was stopped", refund_attempt=True)
            elif not self.store.finish(job.id, self.id, outcome):
                log.warning("job %s was taken over by another worker; result dropped", job.id)
            else:
                log.info("job %s: %s", job.id, outcome.status.value)
        finally:
            with self._lock:
                self._running.pop(job.id, None)
                self.completed += 1
            self._freed.set()

    def _user_cancelled(self, job_id: str) -> bool:
        return bool(self.store.cancel_requested([job_id]))

    def _execute(self, job: Job, cancel: threading.Event) -> Outcome:
        record = self._record(job)
        timeout_s = job.timeout_s or record.spec.limits.timeout_s
        result = self.forge.sandbox.call(
            record.bundle,
            job.args,
            state_ns=job.state_ns,
            timeout_s=timeout_s,
            cancel=cancel,
            labels={WORKER_LABEL: self.id},
        )
        crashed = getattr(result.status, "value", result.status) == "crashed"
        if crashed and not cancel.is_set() and not self.forge.sandbox.available():
            # the engine went away under the run (stopped, restarting): not the job's fault
            raise EnvironmentUnavailable("the sandbox engine went away during the run")
        return outcome_of(result, timeout_s, cancelled=cancel.is_set())


def outcome_of(result: Any, timeout_s: float, *, cancelled: bool = False) -> Outcome:
    """Map a sandbox CallResult onto a job outcome."""
    status = getattr(result.status, "value", str(result.status))
    meta = {k: v for k, v in (result.meta or {}).items() if k in ("container", "warm", "exit_code")}
    common = dict(
        stdout=result.stdout or "",
        stderr=result.stderr or "",
        truncated=bool(result.truncated),
        duration_ms=result.duration_ms,
        meta=meta,
    )
    if status == "ok":
        return Outcome(JobStatus.succeeded, result=result.result, **common)
    if status == "cancelled" or cancelled:
        return Outcome(
            JobStatus.cancelled,
            error={"type": "Cancelled", "message": "cancelled while running; the run was killed"},
            **common,
        )
    if status == "timeout":
        message = f"exceeded its time limit of {timeout_s:g}s; the work was killed"
        return Outcome(
            JobStatus.timed_out, error={"type": "ToolTimeout", "message": message}, **common
        )
    if status == "oom":
        return Outcome(
            JobStatus.failed,
            error={"type": "OutOfMemory", "message": "ran out of memory and was killed"},
            **common,
        )
    error = dict(result.error or {})
    error.setdefault("type", "Crashed" if status == "crashed" else "Error")
    error.setdefault("message", f"the run ended with status {status}")
    return Outcome(JobStatus.failed, error=error, **common)


def run_worker(
    *, concurrency: int | None = None, until_idle: bool = False, forge: Forge | None = None
) -> int:
    """The foreground worker of ``toolforge worker run`` and of the detached daemon; logs to stderr."""
    from toolforge.forge import Forge

    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    own = forge is None
    if forge is None:
        from toolforge.config import load_settings

        settings = load_settings()
        # N slots want N warm sessions per tool, or every call beyond the pool size starts cold.
        settings.pool_size = max(settings.pool_size, concurrency or default_concurrency())
        forge = Forge(settings)
    try:
        return Worker(forge, concurrency=concurrency).run(until_idle=until_idle)
    finally:
        if own:
            forge.close()
