"""Background jobs on the real Docker engine, with real worker processes.

Worker processes are ``python -m toolforge.jobs`` (what ``toolforge worker start`` detaches);
every container they start carries ``io.toolforge.worker=<worker id>``, which is how these
tests find (and finally remove) anything left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES
from toolforge import Forge
from toolforge.jobs import JobStatus
from toolforge.jobs.worker import WORKER_LABEL

pytestmark = pytest.mark.docker

SLEEPER_YAML = """\
name: jobs-sleeper
description: Sleep for a while, print, and return what it did (a test tool for the job queue).
language: python
parameters:
  type: object
  properties:
    seconds: {type: number, minimum: 0}
    tag: {type: string}
  additionalProperties: false
limits: {timeout_s: 30, memory_mb: 64}
"""
SLEEPER_PY = """\
import time


def run(seconds: float = 0, tag: str = "") -> dict:
    print(f"sleeping {seconds}s for {tag}")
    time.sleep(seconds)
    return {"slept": seconds, "tag": tag}
"""


def _api() -> Any:
    from toolforge.sandbox.docker_client import client

    return client().api


def _containers(label: str) -> list[dict[str, Any]]:
    return _api().containers(all=True, filters={"label": label})


@pytest.fixture(scope="module")
def sleeper_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The sleeper tool; its image is built once for the module and removed afterwards."""
    path = tmp_path_factory.mktemp("tools") / "jobs-sleeper"
    path.mkdir()
    (path / "tool.yaml").write_text(SLEEPER_YAML)
    (path / "main.py").write_text(SLEEPER_PY)
    yield path
    for image in _api().images(filters={"label": "io.toolforge.tool=jobs-sleeper"}):
        with contextlib.suppress(Exception):  # still in use by another test run: leave it
            _api().remove_image(image["Id"], force=True)


@pytest.fixture
def forge(sleeper_dir: Path) -> Iterator[Forge]:
    f = Forge()
    f.add(EXAMPLES / "word-count", test=False)
    record, _ = f.add(sleeper_dir, test=False)
    f.sandbox.build(record.bundle)
    f.sandbox.build(f.tool("word-count").bundle)
    yield f
    f.close()


class Workers:
    """Worker processes for one test; stopped (and their containers removed) at teardown."""

    def __init__(self, forge: Forge) -> None:
        self.forge = forge
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, concurrency: int = 2) -> subprocess.Popen[bytes]:
        log = open(self.forge.settings.log_dir / f"worker-{len(self.procs)}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "toolforge.jobs", "--concurrency", str(concurrency)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ},
        )
        log.close()
        self.procs.append(proc)
        wait_for(lambda: self.worker_id(proc) is not None, what="the worker to register")
        return proc

    def worker_id(self, proc: subprocess.Popen[bytes]) -> str | None:
        ids = [w.id for w in self.forge.jobs.workers() if w.pid == proc.pid]
        return ids[0] if ids else None

    def ids(self) -> list[str]:
        return [w.id for w in self.forge.jobs.workers()]

    def leftovers(self) -> list[dict[str, Any]]:
        return [c for wid in self.ids() for c in _containers(f"{WORKER_LABEL}={wid}")]

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for c in self.leftovers():
            _api().remove_container(c["Id"], force=True)


@pytest.fixture
def workers(forge: Forge) -> Iterator[Workers]:
    w = Workers(forge)
    yield w
    w.close()
    assert w.leftovers() == []


def wait_for(cond: Any, *, timeout: float = 60, what: str = "a condition") -> None:
    """Poll ``cond`` (a hang guard, not a speed check)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _gone(container: str) -> bool:
    return _api().containers(all=True, filters={"id": container}) == []


def test_submit_wait_result(forge: Forge, workers: Workers) -> None:
    workers.start(concurrency=2)
    handle = forge.submit("word-count", {"text": "to be or not to be", "unique": True})
    assert handle.result(timeout=120) == {"words": 6, "lines": 1, "chars": 18, "unique_words": 4}
    job = handle.info()
    assert job.status is JobStatus.succeeded and job.attempts == 1
    assert job.started_at and job.finished_at and job.started_at <= job.finished_at
    noisy = forge.submit("jobs-sleeper", {"seconds": 0, "tag": "hello"})
    assert noisy.result(timeout=120) == {"slept": 0, "tag": "hello"}
    assert noisy.logs()["stdout"] == "sleeping 0s for hello\n"


def test_hundred_jobs_across_four_slots_each_succeed_once(forge: Forge, workers: Workers) -> None:
    texts = [" ".join(["w"] * i) for i in range(100)]
    handles = [forge.submit("word-count", {"text": t}) for t in texts]
    workers.start(concurrency=4)
    jobs = [h.wait(timeout=300) for h in handles]
    assert [j.status for j in jobs] == [JobStatus.succeeded] * 100
    assert [j.result["words"] for j in jobs] == list(range(100))
    assert all(j.attempts == 1 for j in jobs)
    assert all([e.event for e in h.events()].count("started") == 1 for h in handles)
    spans = sorted((j.started_at, j.finished_at) for j in jobs)
    peak = max(sum(1 for s, f in spans if s <= start < f) for start, _ in spans)
    assert 1 <= peak <= 4


def test_kill_9_mid_job_then_a_new_worker_completes_it(forge: Forge, workers: Workers) -> None:
    first = workers.start(concurrency=1)
    first_id = workers.worker_id(first)
    handle = forge.submit("jobs-sleeper", {"seconds": 3, "tag": "survivor"})
    wait_for(lambda: handle.status() == "running", what="the job to start")
    wait_for(
        lambda: any(c["State"] == "running" for c in _containers(f"{WORKER_LABEL}={first_id}")),
        what="the job's container",
    )
    orphans = _containers(f"{WORKER_LABEL}={first_id}")  # what the dead worker will leave behind …
    first.kill()  # SIGKILL: no cleanup at all
    first.wait()
    workers.start(concurrency=1)
    assert handle.result(timeout=120) == {"slept": 3, "tag": "survivor"}
    job = handle.info()
    assert job.attempts == 2 and job.worker_id != first_id
    requeued = [e for e in handle.events() if e.event == "requeued"]
    assert len(requeued) == 1 and "died" in requeued[0].detail
    assert all(_gone(c["Id"]) for c in orphans)  # … and removed by the new worker's recovery
    assert forge.jobs.counts()["succeeded"] == 1 and len(forge.jobs.list()) == 1


def test_cancel_queued_and_running(forge: Forge, workers: Workers) -> None:
    workers.start(concurrency=1)
    running = forge.submit("jobs-sleeper", {"seconds": 25, "tag": "long"})
    queued = forge.submit("jobs-sleeper", {"seconds": 0, "tag": "never"})
    wait_for(lambda: running.status() == "running", what="the long job to start")
    assert queued.cancel() == "cancelled"  # at once: it never reaches a worker
    time.sleep(1)  # let the long job's call be under way in its container
    running.cancel()
    job = running.wait(timeout=60)
    assert job.status is JobStatus.cancelled
    assert job.finished_at - job.started_at < 25  # killed, not run to the end
    assert job.meta.get("container") and _gone(job.meta["container"])
    assert queued.info().started_at is None and queued.info().attempts == 0


def test_a_job_over_its_timeout_is_timed_out_and_its_container_gone(
    forge: Forge, workers: Workers
) -> None:
    workers.start(concurrency=1)
    handle = forge.submit("jobs-sleeper", {"seconds": 20}, timeout_s=1)
    job = handle.wait(timeout=60)
    assert job.status is JobStatus.timed_out
    assert job.error["type"] == "ToolTimeout" and "1s" in job.error["message"]
    assert job.meta.get("container") and _gone(job.meta["container"])
    assert job.finished_at - job.started_at < 20


def test_two_workers_never_run_the_same_job(forge: Forge, workers: Workers) -> None:
    a, b = workers.start(concurrency=2), workers.start(concurrency=2)
    handles = [forge.submit("jobs-sleeper", {"seconds": 0.2, "tag": str(i)}) for i in range(30)]
    jobs = [h.wait(timeout=300) for h in handles]
    assert [j.status for j in jobs] == [JobStatus.succeeded] * 30
    assert all(j.attempts == 1 for j in jobs)
    assert all([e.event for e in h.events()].count("started") == 1 for h in handles)
    assert {j.worker_id for j in jobs} == {workers.worker_id(a), workers.worker_id(b)}


def test_jobs_on_one_stateful_namespace_run_one_at_a_time(forge: Forge, workers: Workers) -> None:
    record, _ = forge.add(EXAMPLES / "counter", test=False)
    ns = f"jobs-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    try:
        workers.start(concurrency=4)
        handles = [forge.submit("counter", {"by": 1}, state_ns=ns) for _ in range(8)]
        jobs = [h.wait(timeout=300) for h in handles]
        assert sorted(j.result["count"] for j in jobs) == list(range(1, 9))  # no lost update
        spans = sorted((j.started_at, j.finished_at) for j in jobs)
        assert all(
            prev_end <= start for (_, prev_end), (start, _) in zip(spans, spans[1:], strict=False)
        )
    finally:
        workers.close()  # its warm sessions hold the volume
        forge.sandbox.reset_state(record.bundle, ns)


def test_cli_run_async_returns_at_once_and_the_job_completes(forge: Forge) -> None:
    from toolforge.jobs import daemon

    toolforge = str(Path(sys.executable).with_name("toolforge"))
    try:
        out = subprocess.run(
            [
                toolforge,
                "run",
                "jobs-sleeper",
                "--async",
                "--json",
                "--arg",
                "seconds=2",
                "--arg",
                "tag=bg",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        queued = json.loads(out.stdout)
        assert queued["status"] == "queued"
        handle = forge.job(queued["id"])
        assert not handle.info().finished  # the CLI did not wait for the 2 s of work
        followed = subprocess.run(
            [toolforge, "jobs", "logs", queued["id"], "--follow"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert followed.returncode == 0
        assert "started" in followed.stdout and "succeeded" in followed.stdout
        assert "sleeping 2s for bg" in followed.stdout
        assert handle.result(timeout=120) == {"slept": 2, "tag": "bg"}
        waited = subprocess.run(
            [toolforge, "jobs", "wait", queued["id"]], capture_output=True, text=True, timeout=60
        )
        assert waited.returncode == 0 and json.loads(waited.stdout) == {"slept": 2, "tag": "bg"}
    finally:
        pid = daemon.running_pid(forge.settings)
        assert pid is not None  # run --async started the background worker
        assert daemon.stop(forge.settings) == pid
    worker_ids = [w.id for w in forge.jobs.workers()]
    assert worker_ids and all(_containers(f"{WORKER_LABEL}={wid}") == [] for wid in worker_ids)
