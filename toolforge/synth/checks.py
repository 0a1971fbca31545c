"""Static checks on a draft, before any image is built.

Cheap and exact: they catch what a small model gets wrong most (missing entry function,
syntax errors, tests whose args break the schema, too few tests) in milliseconds, and their
messages go straight back to the model. Nothing here runs the model's code: Python is
parsed with ``ast``, Bash with ``bash -n`` (parse only), TypeScript transpiled with esbuild
when the host has it (transpiling does not execute), else checked structurally — the
sandbox build transpiles it for real either way.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import tempfile

from toolforge.errors import ArgumentError
from toolforge.spec import ToolBundle, validate_args
from toolforge.spec.models import Language

MIN_TESTS = 3
_TS_ENTRY = re.compile(r"export\s+(?:async\s+)?function\s+run\s*[(<]|export\s+const\s+run\s*[:=]")


def static_problems(bundle: ToolBundle) -> list[str]:
    """Every problem found, one line each; empty when the draft may go to the sandbox."""
    problems: list[str] = []
    spec = bundle.spec
    if len(spec.tests) < MIN_TESTS:
        problems.append(f"tests: {len(spec.tests)} given, at least {MIN_TESTS} are needed")
    for i, test in enumerate(spec.tests, 1):
        try:
            validate_args(spec, test.args)
        except ArgumentError as e:
            for path, msg in e.problems:
                problems.append(f"test {i} args{'/' + path if path else ''}: {msg}")
    checker = {
        Language.python: python_problems,
        Language.bash: bash_problems,
        Language.typescript: typescript_problems,
    }[spec.language]
    problems += checker(bundle)
    return problems


def python_problems(bundle: ToolBundle) -> list[str]:
    try:
        tree = ast.parse(bundle.source, filename="main.py")
    except SyntaxError as e:
        return [
            f"main.py line {e.lineno}: SyntaxError: {e.msg}"
            + (f": {e.text.strip()}" if e.text else "")
        ]
    runs = [
        n
        for n in tree.body
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == "run"
    ]
    if not runs:
        return [
            "main.py must define a top-level function run(...) with one keyword argument per parameter"
        ]
    fn = runs[-1].args
    names = [a.arg for a in fn.posonlyargs + fn.args + fn.kwonlyargs]
    if fn.kwarg is not None:
        return []
    props = set(bundle.spec.parameters.get("properties", {}))
    problems = [
        f"run() has no argument {p!r} but the parameters declare it"
        for p in sorted(props - set(names))
    ]
    positional = fn.posonlyargs + fn.args
    required_pos = [a.arg for a in positional[: len(positional) - len(fn.defaults)]]
    required_kw = [a.arg for a, d in zip(fn.kwonlyargs, fn.kw_defaults, strict=False) if d is None]
    for arg in required_pos + required_kw:
        if arg not in props:
            problems.append(f"run() requires argument {arg!r} which is not a declared parameter")
    return problems


def bash_problems(bundle: ToolBundle) -> list[str]:
    bash = shutil.which("bash")
    if bash is None:  # pragma: no cover - every supported host has bash
        return []
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False, encoding="utf-8") as f:
        f.write(bundle.source)
    try:
        proc = subprocess.run([bash, "-n", f.name], capture_output=True, text=True, timeout=10)
    finally:
        os.unlink(f.name)
    if proc.returncode != 0:
        detail = proc.stderr.replace(f.name, "main.sh").strip().splitlines()
        return ["main.sh does not parse (bash -n): " + " | ".join(detail[:3])]
    return []


def esbuild_path() -> str | None:
    return os.environ.get("TOOLFORGE_ESBUILD") or shutil.which("esbuild")


def typescript_problems(bundle: ToolBundle) -> list[str]:
    problems = []
    if not _TS_ENTRY.search(bundle.source):
        problems.append("main.ts must contain `export function run(args: {...}) { ... }`")
    esbuild = esbuild_path()
    if esbuild:
        proc = subprocess.run(
            [esbuild, "--loader=ts", "--format=esm", "--log-level=error"],
            input=bundle.source,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if proc.returncode != 0:
            lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
            problems.append("main.ts does not transpile: " + " | ".join(lines[:4]))
    else:
        problems += _bracket_problems(bundle.source)
    return problems


def _bracket_problems(source: str) -> list[str]:
    """Unbalanced brackets outside strings/comments: the commonest truncation symptom."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    text = re.sub(r"//[^\n]*|/\*.*?\*/", "", source, flags=re.S)
    text = re.sub(r"`(?:\\.|[^`\\])*`|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'", '""', text)
    for ch in text:
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs and (not stack or stack.pop() != pairs[ch]):
            return [f"main.ts has an unmatched {ch!r}"]
    return [f"main.ts has {len(stack)} unclosed bracket(s)"] if stack else []


__all__ = ["MIN_TESTS", "static_problems"]
