"""Sandbox call latency and throughput, each beside a baseline measured in the same run.

* warm: calls through the warm pool (one running runner per tool) vs ``docker exec`` of the
  language's trivial command into an already running container (through the SDK, so no
  ``docker`` CLI start-up is counted against the baseline);
* cold: a new container per call (``pool_size=0``) vs ``docker run --rm <base> <trivial>``
  run from the shell — fewer calls (COLD_CALLS) because each takes a few hundred ms;
* throughput: calls/s of a non-stateful tool with 4 concurrent callers vs 1 caller.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from tests.bench.report import Report, p50, p99, timed
from tests.sandbox_tools import docker_cleanup, write_tool
from toolforge.config import load_settings
from toolforge.sandbox.service import Sandbox

WARM_CALLS = 300
COLD_CALLS = 30
THROUGHPUT_CALLS = 400
TOOLS = {
    "python": ("bench-py", "def run(n: int = 1):\n    return n + 1\n", ["python3", "-c", "pass"]),
    "bash": ("bench-sh", 'echo "$((ARG_N + 1))"\n', ["bash", "-c", "true"]),
    "typescript": (
        "bench-ts",
        "export function run(args: { n: number }): number {\n  return args.n + 1;\n}\n",
        ["node", "-e", "0"],
    ),
}
PARAMS = {"type": "object", "properties": {"n": {"type": "integer"}}}


def bench(report: Report) -> None:
    from toolforge.sandbox.docker_client import client
    from toolforge.sandbox.images import base_image_tag, build_base_images

    home = Path(tempfile.mkdtemp(prefix="toolforge-bench-"))
    settings = load_settings(home=home, backend="docker", pool_size=4, pool_idle_ttl_s=600)
    settings.ensure_dirs()
    build_base_images(settings)
    bundles = {
        lang: write_tool(home / "tools", name, lang, src, parameters=PARAMS)
        for lang, (name, src, _) in TOOLS.items()
    }
    images: list[str] = []
    try:
        with Sandbox(settings) as warm:
            for lang, bundle in bundles.items():
                images.append(warm.build(bundle))
                _warm(report, warm, lang, bundle, base_image_tag(lang, settings), client())
            _throughput(report, warm, bundles["python"])
        cold_settings = settings.model_copy(update={"pool_size": 0})
        with Sandbox(cold_settings) as cold:
            for lang, bundle in bundles.items():
                _cold(report, cold, lang, bundle, base_image_tag(lang, settings))
            _cold_with_removal(report, cold, bundles["python"], base_image_tag("python", settings))
    finally:
        docker_cleanup(images, [])
        shutil.rmtree(home, ignore_errors=True)


def _warm(report: Report, sandbox: Sandbox, lang: str, bundle, base: str, docker) -> None:  # noqa: ANN001
    def call() -> None:
        result = sandbox.call(bundle, {"n": 41})
        assert result.result == 42, result

    times = timed(call, WARM_CALLS, warmup=5)
    command = TOOLS[lang][2]
    api = docker.api
    box = api.create_container(
        base, command=["sleep", "3600"], labels={"io.toolforge": "1", "io.toolforge.kind": "bench"}
    )
    try:
        api.start(box)

        def exec_once() -> None:
            exec_id = api.exec_create(box, command)["Id"]
            api.exec_start(exec_id)
            assert api.exec_inspect(exec_id)["ExitCode"] == 0

        base_times = timed(exec_once, min(WARM_CALLS, 100), warmup=3)
    finally:
        api.remove_container(box, force=True)
    report.add(
        "sandbox",
        f"{lang} warm call p50",
        p50(times),
        "ms",
        baseline_name=f"docker exec {' '.join(command)}",
        baseline=p50(base_times),
        note=f"p99 {p99(times):.2f} ms (exec p99 {p99(base_times):.1f}); n={WARM_CALLS} (exec n={min(WARM_CALLS, 100)})",
    )


def _cold(report: Report, sandbox: Sandbox, lang: str, bundle, base: str) -> None:  # noqa: ANN001
    def call() -> None:
        result = sandbox.call(bundle, {"n": 1})
        assert result.result == 2 and result.meta["warm"] is False, result

    def bare() -> None:
        subprocess.run(
            ["docker", "run", "--rm", base, *TOOLS[lang][2]],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    times = timed(call, COLD_CALLS, warmup=2)
    base_times = timed(bare, COLD_CALLS, warmup=2)
    report.add(
        "sandbox",
        f"{lang} cold call p50",
        p50(times),
        "ms",
        baseline_name=f"docker run --rm {' '.join(TOOLS[lang][2])}",
        baseline=p50(base_times),
        note=f"p99 {p99(times):.0f} ms (run p99 {p99(base_times):.0f}); n={COLD_CALLS} each (cold calls are slow); "
        "container removal runs in the background",
    )


def _cold_with_removal(report: Report, sandbox: Sandbox, bundle, base: str) -> None:  # noqa: ANN001
    """The cold path with the container's removal waited for, like ``docker run --rm``."""

    def call() -> None:
        session = sandbox.backend.start(bundle)
        try:
            assert session.call({"n": 1}, timeout_s=30).result == 2
        finally:
            session.close()

    def bare() -> None:
        subprocess.run(
            ["docker", "run", "--rm", base, *TOOLS["python"][2]],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    times = timed(call, COLD_CALLS, warmup=1)
    base_times = timed(bare, COLD_CALLS, warmup=1)
    report.add(
        "sandbox",
        "python cold call incl. removal p50",
        p50(times),
        "ms",
        baseline_name="docker run --rm python3 -c pass",
        baseline=p50(base_times),
        note=f"p99 {p99(times):.0f} ms (run p99 {p99(base_times):.0f}); n={COLD_CALLS}; removal waited for",
    )


def _throughput(report: Report, sandbox: Sandbox, bundle) -> None:  # noqa: ANN001
    def run_with(callers: int) -> float:
        per_caller = THROUGHPUT_CALLS // callers
        errors: list[object] = []

        def worker() -> None:
            for _ in range(per_caller):
                result = sandbox.call(bundle, {"n": 1})
                if not result.ok:
                    errors.append(result)

        threads = [threading.Thread(target=worker) for _ in range(callers)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        assert not errors, errors[:1]
        return per_caller * callers / elapsed

    run_with(4)  # warm up 4 sessions
    one, four = run_with(1), run_with(4)
    report.add(
        "sandbox",
        "python throughput, 4 callers",
        four,
        "calls/s",
        baseline_name="1 caller",
        baseline=one,
        note=f"{THROUGHPUT_CALLS} calls each way; pool_size 4; this machine has 2 cores",
    )
