"""CLI start-up: ``toolforge --help`` beside ``python -c pass``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.bench.report import Report, p50, p99, timed

TOOLFORGE = str(Path(sys.executable).with_name("toolforge"))


def bench(report: Report) -> None:
    def run(cmd: list[str]) -> None:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

    base = timed(lambda: run([sys.executable, "-c", "pass"]), 15, warmup=2)
    helptime = timed(lambda: run([TOOLFORGE, "--help"]), 15, warmup=2)
    listtime = timed(lambda: run([TOOLFORGE, "list"]), 15, warmup=2)
    report.add(
        "cli",
        "toolforge --help p50",
        p50(helptime),
        "ms",
        baseline_name="python -c pass",
        baseline=p50(base),
        note=f"p99 {p99(helptime):.0f} ms",
    )
    report.add(
        "cli",
        "toolforge list p50",
        p50(listtime),
        "ms",
        baseline_name="python -c pass",
        baseline=p50(base),
        note=f"p99 {p99(listtime):.0f} ms",
    )
