"""Background jobs: submit latency, scheduling overhead per job, throughput at concurrency 4.

Baselines from the same run: a bare SQLite insert (WAL) for submit; the same tool called
synchronously through the warm pool for the per-job overhead; the same 500 calls made
synchronously from 4 threads through the warm pool for throughput.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.bench.report import Report, p50, p99, timed

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "tools"
THROUGHPUT_JOBS = 500
CONCURRENCY = 4


def _worker(home: Path, concurrency: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TOOLFORGE_HOME": str(home), "TOOLFORGE_POOL_SIZE": str(concurrency)}
    return subprocess.Popen(
        [sys.executable, "-m", "toolforge.jobs", "--concurrency", str(concurrency)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_registered(forge: object, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while not any(w.pid == proc.pid and w.stopped_at is None for w in forge.jobs.workers()):  # type: ignore[attr-defined]
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("the bench worker did not start")
        time.sleep(0.05)


def bench(report: Report) -> None:
    from toolforge import Forge
    from toolforge.db import connect

    home = Path(tempfile.mkdtemp(prefix="tf-bench-jobs-"))
    forge = Forge(home=home, pool_size=CONCURRENCY)
    try:
        forge.add(EXAMPLES / "word-count", test=False)
        forge.sandbox.build(forge.tool("word-count").bundle)
        args = {"text": "the quick brown fox"}

        # 1. submit latency (no worker yet: pure enqueue, validation included)
        submit = timed(lambda: forge.submit("word-count", args), 200, warmup=5)
        conn = connect(home / "baseline.db")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
        insert = timed(
            lambda: conn.execute("INSERT INTO t (body) VALUES (?)", ('{"text": "x"}',)),
            200,
            warmup=5,
        )
        conn.close()
        report.add(
            "jobs",
            "submit latency p50",
            p50(submit),
            "ms",
            baseline_name="bare SQLite insert (WAL)",
            baseline=p50(insert),
            note=f"p99 {p99(submit):.2f} ms; mostly the registry re-reading tool.yaml, then validation + insert",
        )
        for job in forge.jobs.list(limit=1000):  # clear the queue before a worker starts
            forge.jobs.cancel(job.id)
        forge.jobs.prune(-1)

        # 2. overhead per job beyond the tool's own run: one job at a time, end to end
        sync = timed(lambda: forge.call("word-count", args), 40, warmup=5)
        proc = _worker(home, CONCURRENCY)
        try:
            _wait_registered(forge, proc)
            e2e = timed(lambda: forge.submit("word-count", args).wait(timeout=60), 40, warmup=5)
            overhead = [max(0.0, x - p50(sync)) for x in e2e]
            report.add(
                "jobs",
                "job end to end p50 (submit → result)",
                p50(e2e),
                "ms",
                baseline_name="same call, sync, warm pool",
                baseline=p50(sync),
                note=f"p99 {p99(e2e):.0f} ms",
            )
            report.add(
                "jobs",
                "scheduling overhead per job p50",
                p50(overhead),
                "ms",
                baseline_name="tool's own warm call",
                baseline=p50(sync),
                note="end to end minus the sync warm call: enqueue, claim poll, record, wait poll",
            )
        finally:
            _stop(proc)

        # 3. throughput: 500 trivial jobs queued first, then drained by a worker with 4 slots;
        # 8 high-priority jobs run first so the slots' sessions are warm, as the baseline's are.
        warmups = [
            forge.submit("word-count", {"text": "warm"}, priority=10)
            for _ in range(CONCURRENCY * 2)
        ]
        handles = [forge.submit("word-count", {"text": f"job {i}"}) for i in range(THROUGHPUT_JOBS)]
        proc = _worker(home, CONCURRENCY)
        try:
            for h in warmups:
                h.wait(timeout=600)
            jobs = [h.wait(timeout=600) for h in handles]
        finally:
            _stop(proc)
        span = max(j.finished_at or 0 for j in jobs) - min(j.started_at or 0 for j in jobs)
        jobs_s = THROUGHPUT_JOBS / span
        failed = forge.jobs.counts()["failed"]
        bundle = forge.tool("word-count").bundle  # resolved once, as the worker does
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            list(
                pool.map(
                    lambda i: forge.sandbox.call(bundle, {"text": "warm"}), range(CONCURRENCY * 2)
                )
            )
            t0 = time.perf_counter()
            list(
                pool.map(
                    lambda i: forge.sandbox.call(bundle, {"text": f"job {i}"}),
                    range(THROUGHPUT_JOBS),
                )
            )
            sync_s = THROUGHPUT_JOBS / (time.perf_counter() - t0)
        report.add(
            "jobs",
            f"throughput, {THROUGHPUT_JOBS} trivial jobs, concurrency {CONCURRENCY}",
            jobs_s,
            "jobs/s",
            baseline_name=f"sync warm calls from {CONCURRENCY} threads",
            baseline=sync_s,
            note=f"{failed} failed; first start → last finish, in a worker process",
        )
        _bench_cancel(report, forge, home)
    finally:
        forge.close()
        shutil.rmtree(home, ignore_errors=True)


SLEEPER_YAML = """\
name: bench-sleeper
description: Sleep (a bench tool for cancel latency).
language: python
parameters: {type: object, properties: {seconds: {type: number}}}
limits: {timeout_s: 60, memory_mb: 64}
"""


def _bench_cancel(report: Report, forge: object, home: Path) -> None:
    """Cancel of a running job (request → recorded cancelled, container killed) vs a direct sandbox cancel."""
    import threading

    from toolforge.sandbox.docker_client import client

    tool = home / "bench-sleeper"
    tool.mkdir()
    (tool / "tool.yaml").write_text(SLEEPER_YAML)
    (tool / "main.py").write_text(
        "import time\n\ndef run(seconds=0):\n    time.sleep(seconds)\n    return {}\n"
    )
    record, _ = forge.add(tool, test=False)  # type: ignore[attr-defined]
    sandbox = forge.sandbox  # type: ignore[attr-defined]
    image = sandbox.build(record.bundle)
    try:
        direct = []
        for _ in range(5):
            cancel = threading.Event()
            threading.Timer(1.0, cancel.set).start()
            t0 = time.perf_counter()
            sandbox.call(record.bundle, {"seconds": 30}, cancel=cancel)
            direct.append((time.perf_counter() - t0 - 1.0) * 1000)
        proc = _worker(home, 1)
        queued = []
        try:
            _wait_registered(forge, proc)
            for _ in range(5):
                handle = forge.submit("bench-sleeper", {"seconds": 30})  # type: ignore[attr-defined]
                while handle.status() != "running":
                    time.sleep(0.01)
                time.sleep(1.0)
                t0 = time.perf_counter()
                handle.cancel()
                handle.wait(timeout=60)
                queued.append((time.perf_counter() - t0) * 1000)
        finally:
            _stop(proc)
        report.add(
            "jobs",
            "cancel of a running job p50 (request → cancelled)",
            p50(queued),
            "ms",
            baseline_name="sandbox call cancelled directly",
            baseline=p50(direct),
            note=f"max {max(queued):.0f} ms (the goal: container killed within 2 s)",
        )
    finally:
        client().api.remove_image(image, force=True)
