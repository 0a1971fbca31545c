"""Turn a sandbox TestReport into the exact, compact failure text a model can act on.

Expected vs got, error type and message, and the tail of the traceback — and nothing else,
because a small model's context is short and it copies noise back.
"""

from __future__ import annotations

import json
from typing import Any

from toolforge.spec import TestReport

TRACEBACK_LINES = 6
VALUE_CHARS = 300
MAX_CASES = 5


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= VALUE_CHARS else text[:VALUE_CHARS] + "…"


def describe_report(report: TestReport) -> str:
    lines = []
    failed = [c for c in report.cases if not c.passed]
    for case in failed[:MAX_CASES]:
        head = f"- test {case.index} with args {_show(case.args)}:"
        error = case.error or {}
        if error:
            message = str(error.get("message", "")).strip()
            lines.append(f"{head} raised {error.get('type', 'Error')}: {message}".rstrip())
            tail = [
                ln for ln in str(error.get("traceback") or "").strip().splitlines() if ln.strip()
            ]
            if tail:
                lines += ["    " + ln for ln in tail[-TRACEBACK_LINES:]]
            if case.kind == "expect" and case.expected is not None:
                lines.append(f"    expected: {_show(case.expected)}")
        elif case.kind == "expect_error":
            lines.append(f"{head} expected an error, got {_show(case.got)}")
        elif case.kind == "check":
            lines.append(f"{head} check failed ({case.detail}); got {_show(case.got)}")
        elif case.expected is None and case.got is None and case.detail:
            lines.append(f"{head} {case.detail}")  # e.g. a timeout: no value, only what happened
        else:
            lines.append(f"{head} expected {_show(case.expected)}, got {_show(case.got)}")
    if len(failed) > MAX_CASES:
        lines.append(f"- … and {len(failed) - MAX_CASES} more failing test(s)")
    if not report.cases:
        lines.append("- the tool has no tests")
    return "\n".join(lines) or "- no failures"


__all__ = ["describe_report"]
