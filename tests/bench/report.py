"""The ``make bench`` table: every figure beside a baseline measured in the same run."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table


@dataclass
class Row:
    section: str
    metric: str
    value: float
    unit: str
    baseline_name: str = ""
    baseline: float | None = None
    note: str = ""

    @property
    def ratio(self) -> str:
        if self.baseline in (None, 0):
            return ""
        return f"{self.value / self.baseline:.2f}×"


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(
        self,
        section: str,
        metric: str,
        value: float,
        unit: str,
        *,
        baseline_name: str = "",
        baseline: float | None = None,
        note: str = "",
    ) -> None:
        self.rows.append(Row(section, metric, value, unit, baseline_name, baseline, note))

    def render(self, console: Console | None = None) -> None:
        t = Table(title="toolforge bench", header_style="bold")
        for col in ("section", "metric", "value", "baseline (same run)", "ratio", "note"):
            t.add_column(col)
        for r in self.rows:
            base = (
                f"{r.baseline_name}: {_fmt(r.baseline, r.unit)}"
                if r.baseline is not None
                else r.baseline_name
            )
            t.add_row(r.section, r.metric, _fmt(r.value, r.unit), base, r.ratio, r.note)
        (console or Console(width=max(Console().width, 160))).print(t)


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "%":
        return f"{value:.0f}%"
    return f"{value:,.1f} {unit}".strip()


def timed(fn: Callable[[], object], n: int, *, warmup: int = 0) -> list[float]:
    """Run ``fn`` n times; return each duration in milliseconds."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def p50(xs: list[float]) -> float:
    return statistics.median(xs)


def p99(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.99 * (len(xs) - 1))))]
