"""The worker's scheduling logic (slots, serialisation, cancel, shutdown) against an in-process
sandbox stand-in; the real-container behaviour is in test_jobs_docker.py."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from toolforge import Forge
from toolforge.errors import DockerUnavailable
from toolforge.jobs import JobStatus
from toolforge.jobs.worker import WORKER_LABEL, Worker
from toolforge.sandbox.backend import CallResult, CallStatus

SLEEPER = """\
name: sleeper
description: Sleep, then say so.
language: python
stateful: {stateful}
parameters:
  type: object
  properties:
    seconds: {{type: number}}
    fail: {{type: boolean}}
    down: {{type: boolean}}
    engine_dies: {{type: boolean}}
    crash: {{type: boolean}}
limits: {{timeout_s: 5}}
"""


class StandInSandbox:
    """Runs a 'call' as a sleep in the calling thread; honours timeout and cancel like the contract."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active: dict[str, int] = {}
        self.peak = 0
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.engine_up = True

    def call(
        self,
        bundle: Any,
        args: dict[str, Any],
        *,
        state_ns: str | None = None,
        timeout_s: float | None = None,
        cancel: threading.Event | None = None,
        labels: dict[str, str] | None = None,
    ) -> CallResult:
        if args.get("down"):
            raise DockerUnavailable("connection refused")
        if args.get("engine_dies") or args.get("crash"):
            self.engine_up = not args.get("engine_dies")
            return CallResult(
                CallStatus.crashed, error={"type": "Crashed", "message": "runner died"}
            )
        key = f"{bundle.name}/{state_ns}"
        with self.lock:
            self.active[key] = self.active.get(key, 0) + 1
            self.peak = max(self.peak, sum(self.active.values()))
            self.calls.append((key, dict(labels or {})))
            overlap = self.active[key] > 1
        try:
            deadline = time.monotonic() + float(args.get("seconds", 0))
            limit = time.monotonic() + (timeout_s or 5)
            while time.monotonic() < deadline:
                if cancel is not None and cancel.wait(0.01):
                    return CallResult(CallStatus.cancelled)
                if time.monotonic() > limit:
                    return CallResult(CallStatus.timeout)
            if args.get("fail"):
                return CallResult(
                    CallStatus.error,
                    error={"type": "ValueError", "message": "asked to fail"},
                    stderr="boom",
                )
            return CallResult(
                CallStatus.ok,
                result={"ok": True, "overlap": overlap},
                stdout="slept\n",
                duration_ms=1.0,
                meta={"container": "c1", "warm": True, "other": 1},
            )
        finally:
            with self.lock:
                self.active[key] -= 1

    def reap_orphans(self) -> int:
        return 0

    def available(self) -> bool:
        return self.engine_up

    def close(self) -> None:
        pass


def _tool(root: Path, stateful: bool) -> Path:
    path = root / ("stateful" if stateful else "plain")
    path.mkdir(parents=True)
    (path / "tool.yaml").write_text(
        SLEEPER.format(stateful=str(stateful).lower()).replace(
            "name: sleeper", f"name: {'st-sleeper' if stateful else 'sleeper'}"
        )
    )
    (path / "main.py").write_text("def run(seconds=0, fail=False):\n    return {}\n")
    return path


@pytest.fixture
def forge(tmp_path: Path):
    f = Forge()
    f.add(_tool(tmp_path, False), test=False)
    f.add(_tool(tmp_path, True), test=False)
    f.__dict__["sandbox"] = StandInSandbox()
    yield f
    f.close()


def _start(forge: Forge, **kw: Any) -> tuple[Worker, threading.Thread]:
    worker = Worker(forge, poll_s=0.01, cancel_check_s=0.05, heartbeat_s=0.1, **kw)
    thread = threading.Thread(target=worker.run)
    thread.start()
    return worker, thread


def _wait_status(handle: Any, status: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while handle.status() != status and time.monotonic() < deadline:
        time.sleep(0.01)
    assert handle.status() == status


def test_runs_jobs_in_slots_and_records_outcomes(forge: Forge) -> None:
    ok = [forge.submit("sleeper", {"seconds": 0.05}) for _ in range(12)]
    bad = forge.submit("sleeper", {"fail": True})
    worker = Worker(forge, concurrency=3, poll_s=0.01)
    assert worker.run(until_idle=True) == 13
    assert all(h.result()["ok"] for h in ok)
    assert 1 < forge.sandbox.peak <= 3
    failed = bad.info()
    assert (
        failed.status is JobStatus.failed
        and failed.error["type"] == "ValueError"
        and failed.stderr == "boom"
    )
    assert ok[0].logs() == {"stdout": "slept\n", "stderr": ""}
    assert ok[0].info().meta == {"container": "c1", "warm": True}
    assert {labels[WORKER_LABEL] for _, labels in forge.sandbox.calls} == {worker.id}
    assert len(forge.sandbox.calls) == 13


def test_stateful_jobs_on_one_namespace_never_overlap(forge: Forge) -> None:
    handles = [forge.submit("st-sleeper", {"seconds": 0.03}, state_ns="a") for _ in range(6)]
    handles += [forge.submit("st-sleeper", {"seconds": 0.03}, state_ns="b") for _ in range(6)]
    Worker(forge, concurrency=4, poll_s=0.01).run(until_idle=True)
    assert [h.result()["overlap"] for h in handles] == [False] * 12
    assert forge.sandbox.peak >= 2  # the two namespaces did run side by side


def test_cancel_running_job_sets_the_event_and_ends_cancelled(forge: Forge) -> None:
    worker, thread = _start(forge, concurrency=1)
    try:
        running = forge.submit("sleeper", {"seconds": 4})
        queued = forge.submit("sleeper", {"seconds": 0})
        _wait_status(running, "running")
        assert running.cancel() == "running"  # flagged; the worker kills it
        _wait_status(running, "cancelled")
        assert running.info().duration_ms is None or running.info().duration_ms < 4000
        assert queued.result(timeout=10)["ok"]
    finally:
        worker.stop()
        thread.join()


def test_timeout_and_stop_requeues_unfinished_work(forge: Forge) -> None:
    timed = forge.submit("sleeper", {"seconds": 3}, timeout_s=0.2)
    Worker(forge, concurrency=1, poll_s=0.01).run(until_idle=True)
    assert timed.info().status is JobStatus.timed_out
    long = forge.submit("sleeper", {"seconds": 4})
    worker, thread = _start(forge, concurrency=1, shutdown_grace_s=0.1)
    _wait_status(long, "running")
    worker.stop()
    thread.join()
    back = long.info()
    assert back.status is JobStatus.queued and back.attempts == 0  # the stop is not the job's fault
    assert [e.event for e in long.events()][-1] == "requeued"
    workers = forge.jobs.workers()
    assert workers and all(w.stopped_at is not None for w in workers)


def test_an_unreachable_engine_requeues_without_using_an_attempt(forge: Forge) -> None:
    handle = forge.submit("sleeper", {"down": True}, max_attempts=1)
    Worker(forge, concurrency=1, poll_s=0.01).run(until_idle=True)
    job = handle.info()
    assert job.status is JobStatus.queued and job.attempts == 0 and job.run_after > time.time()
    assert "connection refused" in handle.events()[-1].detail


def test_an_engine_that_dies_mid_run_requeues_while_a_plain_crash_fails(forge: Forge) -> None:
    lost = forge.submit("sleeper", {"engine_dies": True}, max_attempts=1)
    Worker(forge, concurrency=1, poll_s=0.01).run(until_idle=True)
    job = lost.info()
    assert job.status is JobStatus.queued and job.attempts == 0  # waits for the engine, refunded
    assert "engine went away" in lost.events()[-1].detail

    forge.sandbox.engine_up = True
    crash = forge.submit("sleeper", {"crash": True}, max_attempts=1)
    Worker(forge, concurrency=1, poll_s=0.01).run(until_idle=True)
    failed = crash.info()
    assert failed.status is JobStatus.failed and failed.error["type"] == "Crashed"


def test_cli_worker_start_status_stop() -> None:
    from typer.testing import CliRunner

    from toolforge.cli.app import app

    runner = CliRunner()
    first = runner.invoke(app, ["worker", "start", "--concurrency", "1", "--json"])
    assert first.exit_code == 0, first.output
    started = json.loads(first.stdout)
    try:
        assert started["started"] is True and Path(started["log"]).name == "worker.log"
        again = json.loads(runner.invoke(app, ["worker", "start", "--json"]).stdout)
        assert again == {**started, "started": False}  # one background worker per TOOLFORGE_HOME
        status = json.loads(runner.invoke(app, ["worker", "status", "--json"]).stdout)
        assert status["daemon"]["pid"] == started["pid"]
        assert [w["pid"] for w in status["workers"] if w["alive"]] == [started["pid"]]
    finally:
        stopped = runner.invoke(app, ["worker", "stop"])
    assert stopped.exit_code == 0 and f"Worker {started['pid']} stopped" in stopped.stdout
    status = json.loads(runner.invoke(app, ["worker", "status", "--json"]).stdout)
    assert status["daemon"]["pid"] is None and not any(w["alive"] for w in status["workers"])
    assert "No background worker is running" in runner.invoke(app, ["worker", "stop"]).stdout
