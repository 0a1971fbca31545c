"""Background jobs and the worker: ``toolforge jobs …`` and ``toolforge worker …``.

``jobs wait`` exits with the job's outcome: 0 succeeded, 1 failed, 4 timed_out,
5 cancelled, 124 still unfinished when --timeout passed (130 stays Ctrl-C).
"""

from __future__ import annotations

import re
import time
from typing import Any

import typer
from rich.markup import escape

from toolforge.cli.render import console, err_console, forge, print_json, success, table
from toolforge.errors import Interrupted, UsageError

jobs_app = typer.Typer(
    help="Background jobs: list, status, wait, logs, cancel, retry, prune.", no_args_is_help=True
)
worker_app = typer.Typer(
    help="The worker that runs background jobs: run, start, stop, status.", no_args_is_help=True
)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
STATUS_STYLE = {
    "queued": "cyan",
    "running": "yellow",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "magenta",
    "timed_out": "red",
}


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(worker_app, name="worker")


def parse_duration(text: str) -> float:
    """``"7d"`` → seconds; units s, m, h, d, w (a bare number is seconds)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not match:
        raise UsageError(
            f"Bad duration {text!r}", hint="Use a number and a unit: 45s, 30m, 12h, 7d, 2w."
        )
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def _ago(ts: float | None) -> str:
    if ts is None:
        return ""
    secs = max(0.0, time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs / size:.0f}{unit} ago"
    return f"{secs:.0f}s ago"


def _status(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def run_async(
    f: Any,
    ref: str,
    args: dict[str, Any],
    *,
    state_ns: str | None = None,
    timeout_s: float | None = None,
    priority: int = 0,
    json_out: bool = False,
) -> None:
    """``toolforge run NAME --async``: queue the call, make sure a worker is alive, print the id, return.

    Bad input fails here (exit 2) and queues nothing. The worker is started detached
    without waiting for it to come up, so the command returns at once.
    """
    handle = f.submit(ref, args, state_ns=state_ns, timeout_s=timeout_s, priority=priority)
    pid, started = f.start_worker(wait_s=0)
    if json_out:
        print_json({"id": handle.id, "status": "queued"})
        return
    console().print(handle.id)
    note = f"started a background worker (pid {pid})" if started else f"worker pid {pid}"
    err_console().print(f"[dim]queued; {note}. Follow it with: toolforge jobs wait {handle.id}[/]")


# -- jobs -----------------------------------------------------------------------------------
@jobs_app.command("list")
def list_jobs(
    status: str | None = typer.Option(
        None, "--status", help="queued | running | succeeded | failed | cancelled | timed_out"
    ),
    tool: str | None = typer.Option(None, "--tool", help="Only this tool's jobs."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many, newest first."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List jobs, newest first."""
    from toolforge.jobs.models import JobStatus

    if status is not None and status not in JobStatus.__members__:
        raise UsageError(
            f"Unknown status {status!r}", hint=f"Use one of: {', '.join(JobStatus.__members__)}"
        )
    with forge() as f:
        jobs = f.jobs.list(status=JobStatus(status) if status else None, tool=tool, limit=limit)
        if json_out:
            print_json([j.to_json(output=False) for j in jobs])
            return
        if not jobs:
            console().print("No jobs. Queue one with: toolforge run NAME --async --arg k=v")
            return
        from rich.table import Table

        t = Table(header_style="bold")
        t.add_column("id", no_wrap=True, min_width=12)  # ids are for copying: never cut
        for col in ("tool", "status", "attempts", "priority", "queued", "ran"):
            t.add_column(col, overflow="fold")
        for j in jobs:
            t.add_row(
                j.id,
                escape(f"{j.tool}@{j.version}"),
                _status(j.status.value),
                f"{j.attempts}/{j.max_attempts}",
                str(j.priority),
                _ago(j.queued_at),
                "" if j.duration_ms is None else f"{j.duration_ms / 1000:.2f}s",
            )
        console().print(t)


@jobs_app.command("status")
def status(
    job_id: str = typer.Argument(..., help="The job id (from run --async or jobs list)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one job: status, attempts, timestamps, result or error."""
    with forge() as f:
        job = f.job(job_id).info()
        if json_out:
            print_json(job.to_json())
            return
        out = console()
        data = job.to_json(output=False)
        out.print(
            f"[bold]{job.id}[/]  {escape(job.tool)}@{job.version}  {_status(job.status.value)}"
            f"  attempt {job.attempts}/{job.max_attempts}  priority {job.priority}"
        )
        for key in ("queued_at", "started_at", "finished_at", "worker"):
            if data[key]:
                out.print(f"{key}: {data[key]}")
        if job.cancel_requested and not job.finished:
            out.print("cancel requested: the worker is killing the run")
        if job.error:
            out.print(
                f"error: [red]{escape(str(job.error.get('type')))}: {escape(str(job.error.get('message')))}[/]"
            )
        if job.status.value == "succeeded":
            print_json(job.result)


@jobs_app.command("wait")
def wait(
    job_id: str = typer.Argument(..., help="The job id."),
    timeout: float | None = typer.Option(
        None, "--timeout", min=0, help="Give up waiting after S seconds (exit 124)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the finished job as JSON."),
) -> None:
    """Wait for a job; print its result. Exit 0 succeeded, 1 failed, 4 timed_out, 5 cancelled, 124 still running."""
    from toolforge.jobs.api import result_of

    with forge() as f:
        handle = f.job(job_id)
        start = time.monotonic()
        try:
            with err_console().status(f"job {job_id}: waiting") as spinner:

                def show(job: Any) -> None:
                    spinner.update(
                        f"job {job_id}: {job.status.value} · {time.monotonic() - start:.1f}s"
                    )

                job = handle.wait(timeout, on_poll=show)
        except KeyboardInterrupt:
            raise Interrupted(
                f"Stopped waiting; job {job_id} goes on. Cancel it with: toolforge jobs cancel {job_id}"
            ) from None
        if json_out:
            print_json(job.to_json())
        if job.status.value == "succeeded":
            if not json_out:
                print_json(job.result)
            return
        if json_out:
            from toolforge.jobs.models import EXIT_CODES

            raise typer.Exit(EXIT_CODES[job.status])
        result_of(job)  # raises the outcome's error: the boundary prints it and exits with its code


@jobs_app.command("logs")
def logs(
    job_id: str = typer.Argument(..., help="The job id."),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Stream the job's events until it finishes."
    ),
) -> None:
    """Show a job's life (queued, started, requeued, finished …) and its captured stdout / stderr."""
    with forge() as f:
        handle = f.job(job_id)
        out = console()
        seen = 0
        try:
            while True:
                for event in handle.events(seen):
                    seen = event.seq
                    detail = f"  {escape(event.detail)}" if event.detail else ""
                    out.print(f"[dim]{event.to_json()['at']}[/] {_status(event.event)}{detail}")
                job = handle.info()
                if job.finished or not follow:
                    break
                time.sleep(0.2)
        except KeyboardInterrupt:
            raise Interrupted(f"Stopped following; job {job_id} goes on.") from None
        for name, text in (("stdout", job.stdout), ("stderr", job.stderr)):
            if text:
                out.print(f"[bold]--- {name} ---[/]")
                out.out(text.rstrip("\n"), highlight=False)
        if job.truncated:
            out.print("[dim](output was truncated)[/]")


@jobs_app.command("cancel")
def cancel(job_id: str = typer.Argument(..., help="The job id.")) -> None:
    """Cancel a job: a queued one at once; a running one has its container killed within 2 s."""
    with forge() as f:
        job = f.jobs.cancel(job_id)
        if job.status.value == "cancelled":
            success(f"Cancelled job {job_id}")
        elif job.cancel_requested and not job.finished:
            success(
                f"Cancelling job {job_id}: its worker is killing the run (see: toolforge jobs wait {job_id})"
            )
        else:
            console().print(f"Job {job_id} already {job.status.value}; nothing to cancel")


@jobs_app.command("retry")
def retry(job_id: str = typer.Argument(..., help="The job id.")) -> None:
    """Queue a failed, timed-out or cancelled job again, with fresh attempts."""
    with forge() as f:
        f.jobs.retry(job_id)
        success(f"Job {job_id} is queued again (see: toolforge jobs wait {job_id})")


@jobs_app.command("prune")
def prune(
    older_than: str = typer.Option(
        "7d",
        "--older-than",
        help="Delete finished jobs that ended before this long ago (45s, 30m, 12h, 7d, 2w).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Delete finished jobs (and their events) older than --older-than; queued and running jobs stay."""
    seconds = parse_duration(older_than)
    with forge() as f:
        removed = f.jobs.prune(seconds)
        if json_out:
            print_json({"removed": removed})
        else:
            success(f"Pruned {removed} finished job(s) older than {older_than}")


# -- worker ---------------------------------------------------------------------------------
@worker_app.command("run")
def worker_run(
    concurrency: int | None = typer.Option(
        None,
        "--concurrency",
        "-c",
        min=1,
        help="Jobs run at once (default: CPU count, at least 2).",
    ),
) -> None:
    """Run a worker in the foreground (Ctrl-C: finish or requeue the running jobs, then stop)."""
    from toolforge.jobs.worker import run_worker

    run_worker(concurrency=concurrency)


@worker_app.command("start")
def worker_start(
    concurrency: int | None = typer.Option(
        None, "--concurrency", "-c", min=1, help="Jobs run at once."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Start a worker in the background (no-op when one is alive); its pid and log live under TOOLFORGE_HOME."""
    from toolforge.jobs import daemon

    with forge() as f:
        pid, started = f.start_worker(concurrency=concurrency)
        if json_out:
            print_json({"pid": pid, "started": started, "log": str(daemon.log_file(f.settings))})
        elif started:
            success(f"Worker started (pid {pid}); log: {daemon.log_file(f.settings)}")
        else:
            console().print(f"A worker is already running (pid {pid})")


@worker_app.command("stop")
def worker_stop(
    timeout: float = typer.Option(
        30.0, "--timeout", min=0, help="Seconds to let running jobs finish before killing."
    ),
) -> None:
    """Stop the background worker; jobs it cannot finish in time go back to the queue."""
    from toolforge.jobs import daemon

    with forge() as f:
        pid = daemon.stop(f.settings, timeout_s=timeout)
        if pid is None:
            console().print("No background worker is running")
        else:
            success(f"Worker {pid} stopped")


@worker_app.command("status")
def worker_status(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the background worker, every live worker, and how many jobs are in each state."""
    from toolforge.jobs import daemon

    with forge() as f:
        data = daemon.status(f.settings, f.jobs)
        if json_out:
            print_json(data)
            return
        out = console()
        pid = data["daemon"]["pid"]
        out.print(
            f"background worker: {'running, pid ' + str(pid) if pid else 'not running'}  (log: {data['daemon']['log']})"
        )
        alive = [w for w in data["workers"] if w["alive"]]
        if alive:
            table(
                ["worker", "slots", "running", "started"],
                [[w["id"], w["concurrency"], len(w["running"]), w["started_at"]] for w in alive],
            )
        out.print("jobs: " + ", ".join(f"{k} {v}" for k, v in data["jobs"].items()))
