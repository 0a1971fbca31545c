"""Synthesis with the embedded model: a fixed set of requirements, each checked twice.

Every requirement names its parameters (so a check can call the tool whatever else the model
chose). A generated tool counts only when its own tests pass in the sandbox AND the
independent checks below — written by hand, never shown to the model — pass when the
registered tool is called in the sandbox. Figures: pass rate first try, after repair /
resampling, and by the hand checks; median seconds per stage; tokens per tool. Baselines
from the same run: the first-try rate, and one bare model round trip.

Run alone:  python -m tests.bench synth   (BENCH_SYNTH_LIMIT=N for the first N only,
BENCH_SYNTH_LANGS=bash for one language)
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from tests.bench.report import Report

Check = tuple[dict[str, Any], Any]


@dataclass
class Case:
    language: str
    requirement: str
    checks: list[Check] = field(default_factory=list)


CASES = [
    Case(
        "python",
        "convert Celsius to Fahrenheit. Parameter: celsius (number). Return the Fahrenheit value as a number.",
        [({"celsius": 0}, 32), ({"celsius": 37}, 98.6), ({"celsius": -40}, -40)],
    ),
    Case(
        "python",
        "return the n-th Fibonacci number, where fib(0) = 0 and fib(1) = 1. Parameter: n (integer).",
        [({"n": 0}, 0), ({"n": 10}, 55), ({"n": 20}, 6765)],
    ),
    Case(
        "python",
        "count the words in a text (words are separated by whitespace). Parameter: text (string). Return the count.",
        [({"text": "a b  c"}, 3), ({"text": ""}, 0), ({"text": "one\ntwo three"}, 3)],
    ),
    Case(
        "python",
        "check whether a text is a palindrome, ignoring case, spaces and punctuation. Parameter: text (string). Return true or false.",
        [
            ({"text": "A man, a plan, a canal: Panama"}, True),
            ({"text": "hello"}, False),
            ({"text": "Never odd or even"}, True),
        ],
    ),
    Case(
        "python",
        "return the sum of a list of numbers. Parameter: numbers (array of numbers).",
        [({"numbers": [1, 2, 3.5]}, 6.5), ({"numbers": []}, 0), ({"numbers": [-1, 1]}, 0)],
    ),
    Case(
        "python",
        "convert a camelCase identifier to snake_case. Parameter: text (string).",
        [
            ({"text": "helloWorld"}, "hello_world"),
            ({"text": "parseHttpResponse"}, "parse_http_response"),
            ({"text": "x"}, "x"),
        ],
    ),
    Case(
        "typescript",
        "reverse a string. Parameter: text (string). Return the reversed string.",
        [({"text": "abc"}, "cba"), ({"text": ""}, ""), ({"text": "racecar!"}, "!racecar")],
    ),
    Case(
        "typescript",
        "return the largest number in a list. Parameter: numbers (array of numbers, at least one).",
        [({"numbers": [3, 9, 2]}, 9), ({"numbers": [-5, -2]}, -2), ({"numbers": [7]}, 7)],
    ),
    Case(
        "typescript",
        "count how many times a character occurs in a text. Parameters: text (string) and char (string of length 1).",
        [
            ({"text": "banana", "char": "a"}, 3),
            ({"text": "xyz", "char": "a"}, 0),
            ({"text": "aaa", "char": "a"}, 3),
        ],
    ),
    Case(
        "typescript",
        "compute the factorial of a non-negative integer. Parameter: n (integer).",
        [({"n": 0}, 1), ({"n": 5}, 120), ({"n": 10}, 3628800)],
    ),
    Case(
        "typescript",
        "convert a text to upper case. Parameter: text (string).",
        [
            ({"text": "Hello World"}, "HELLO WORLD"),
            ({"text": ""}, ""),
            ({"text": "abc123"}, "ABC123"),
        ],
    ),
    Case(
        "bash",
        "count the lines in a text. Parameter: text (string). Print the number of lines.",
        [({"text": "a\nb\nc"}, 3), ({"text": "one line"}, 1)],
    ),
    Case(
        "bash",
        "add two integers. Parameters: a (integer) and b (integer). Print the sum.",
        [({"a": 2, "b": 3}, 5), ({"a": -1, "b": 1}, 0), ({"a": 100, "b": 250}, 350)],
    ),
    Case(
        "bash",
        "convert a text to lower case. Parameter: text (string).",
        [({"text": "HeLLo"}, "hello"), ({"text": "ABC def"}, "abc def")],
    ),
    Case(
        "bash",
        "repeat a text n times with no separator. Parameters: text (string) and n (integer).",
        [({"text": "ab", "n": 3}, "ababab"), ({"text": "x", "n": 1}, "x")],
    ),
    Case(
        "bash",
        "print the length of a text in characters. Parameter: text (string).",
        [({"text": "hello"}, 5), ({"text": "a b"}, 3)],
    ),
]


def same(expected: Any, got: Any) -> bool:
    """Equality as a user means it: numbers within 1e-6 (bash prints text, so "5" == 5)."""
    if isinstance(expected, bool) or isinstance(got, bool):
        return expected is got or str(got).lower() == str(expected).lower()
    if isinstance(expected, (int, float)):
        try:
            return abs(float(got) - float(expected)) < 1e-6
        except (TypeError, ValueError):
            return False
    if isinstance(expected, str) and isinstance(got, str):
        return got.strip() == expected.strip()
    return bool(expected == got)


def run_case(forge: Any, case: Case, attempts: int, candidates: int) -> dict[str, Any]:
    from toolforge.errors import ToolforgeError

    started = time.monotonic()
    result = forge.generate(
        case.requirement,
        language=case.language,
        attempts=attempts,
        candidates=candidates,
        check=False,
    )
    checks_ok = False
    if result.passed:
        checks_ok = True
        for args, expected in case.checks:
            try:
                got = forge.run(f"{result.name}@{result.version}", **args)
            except ToolforgeError as e:
                got = f"error: {e.message}"
            if not same(expected, got):
                checks_ok = False
                print(f"   hand check failed: {args} expected {expected!r} got {got!r}", flush=True)
    return {"result": result, "checks_ok": checks_ok, "seconds": time.monotonic() - started}


def bench(report: Report) -> None:
    from toolforge.forge import Forge
    from toolforge.llm.local import local_model_status

    langs = os.environ.get("BENCH_SYNTH_LANGS", "python,typescript,bash").split(",")
    cases = [c for c in CASES if c.language in langs][
        : int(os.environ.get("BENCH_SYNTH_LIMIT", len(CASES)))
    ]
    attempts = int(os.environ.get("BENCH_SYNTH_ATTEMPTS", "2"))
    candidates = int(os.environ.get("BENCH_SYNTH_CANDIDATES", "2"))
    with (
        tempfile.TemporaryDirectory(prefix="toolforge-bench-synth-") as home,
        Forge(home=home) as forge,
    ):
        status = local_model_status(forge.settings)
        if not status.ok:
            report.add(
                "synth", "skipped", 0, "", note=f"embedded model unavailable: {status.detail}"
            )
            return
        llm = forge.llm
        t0 = time.monotonic()
        llm.complete([{"role": "user", "content": "Say OK."}], max_tokens=4, temperature=0)
        round_trip = time.monotonic() - t0
        runs = []
        for case in cases:
            out = run_case(forge, case, attempts, candidates)
            r = out["result"]
            print(
                f" {case.language:10} {'PASS' if r.passed else 'FAIL'}{'*' if r.first_try else ' '} "
                f"checks={'ok' if out['checks_ok'] else '--'} drafts={r.candidates} {out['seconds']:.1f}s "
                f"{case.requirement[:60]}",
                flush=True,
            )
            runs.append(out)
    n = len(runs)
    first = 100 * sum(o["result"].first_try for o in runs) / n
    after = 100 * sum(o["result"].passed for o in runs) / n
    hand = 100 * sum(o["checks_ok"] for o in runs) / n
    note = f"{n} requirements, attempts={attempts}, candidates={candidates}"
    report.add("synth", "pass rate, first try (own tests)", first, "%", note=note)
    report.add(
        "synth",
        "pass rate after repair/resample",
        after,
        "%",
        baseline_name="first try",
        baseline=first,
    )
    report.add(
        "synth",
        "pass rate incl. hand-written checks",
        hand,
        "%",
        baseline_name="own tests only",
        baseline=after,
    )
    for lang in ("python", "typescript", "bash"):
        mine = [o for o in runs if o["result"].language == lang]
        if mine:
            rate = 100 * sum(o["checks_ok"] for o in mine) / len(mine)
            report.add(
                "synth",
                f"  {lang}: pass incl. hand checks",
                rate,
                "%",
                note=f"{len(mine)} requirements",
            )
    for stage in ("draft", "check", "build", "test"):
        median = statistics.median(o["result"].seconds.get(stage, 0.0) for o in runs)
        report.add(
            "synth",
            f"median s per tool: {stage}",
            median,
            "s",
            baseline_name="one bare model round trip" if stage == "draft" else "",
            baseline=round_trip if stage == "draft" else None,
        )
    tokens = statistics.median(o["result"].usage.total_tokens for o in runs)
    report.add("synth", "median tokens per tool", tokens, "tok")
    report.add(
        "synth",
        "median wall s per tool",
        statistics.median(o["seconds"] for o in runs),
        "s",
        baseline_name="one bare model round trip",
        baseline=round_trip,
    )
