"""``make bench``: run every benchmark section and print one table.

Each ``bench_<part>.py`` module defines ``bench(report: Report) -> None``. Select sections
with ``python -m tests.bench cli sandbox`` (default: all).
"""

from __future__ import annotations

import sys
import traceback
from importlib import import_module

from tests.bench.report import Report

SECTIONS = ["cli", "sandbox", "build", "jobs", "memory", "synth", "agents"]


def main(argv: list[str]) -> int:
    chosen = argv or SECTIONS
    report = Report()
    failed = []
    for name in chosen:
        try:
            module = import_module(f"tests.bench.bench_{name}")
        except ModuleNotFoundError:
            continue
        print(f"== bench: {name}", flush=True)
        try:
            module.bench(report)
        except Exception:  # noqa: BLE001 - report and go on with the other sections
            traceback.print_exc()
            failed.append(name)
    report.render()
    if failed:
        print(f"sections that failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
