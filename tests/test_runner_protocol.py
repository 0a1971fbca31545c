"""The runner protocol without Docker: the runners as plain subprocesses, the host-side
frame reader and demultiplexer, the warm pool's rules (with a fake backend), and the safe
check evaluator."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from toolforge.sandbox.backend import Backend, CallResult, CallStatus, Session
from toolforge.sandbox.checks import CheckError, equal, evaluate
from toolforge.sandbox.docker_backend import Demux
from toolforge.sandbox.pool import Pool, StateLocks
from toolforge.sandbox.protocol import FrameReader, ProtocolError, result_from_frame
from toolforge.spec import ToolBundle, ToolSpec

RUNNERS = Path(__file__).resolve().parent.parent / "toolforge" / "sandbox" / "runners"


class Runner:
    """A runner subprocess speaking the protocol on its stdin/stdout."""

    def __init__(self, tool_dir: Path, language: str) -> None:
        env = {
            **os.environ,
            "TOOLFORGE_TOOL_DIR": str(tool_dir),
            "TOOLFORGE_LANGUAGE": language,
            "TOOLFORGE_STATE_DIR": str(tool_dir),
            "TMPDIR": str(tool_dir),
        }
        cmd = (
            ["node", str(RUNNERS / "runner.mjs")]
            if language == "typescript"
            else [sys.executable, "-u", str(RUNNERS / "runner.py")]
        )
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=tool_dir
        )
        self.ready = self.read()

    def read(self) -> dict[str, Any]:
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        assert line, "the runner closed its stdout"
        return json.loads(line)

    def call(self, args: dict[str, Any], output_limit: int | None = None) -> dict[str, Any]:
        request: dict[str, Any] = {"id": 7, "args": args}
        if output_limit:
            request["output_limit"] = output_limit
        self.proc.stdin.write((json.dumps(request) + "\n").encode())  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return self.read()

    def close(self) -> int:
        self.proc.stdin.close()  # type: ignore[union-attr]
        code = self.proc.wait(timeout=10)
        self.proc.stdout.close()  # type: ignore[union-attr]
        return code


@pytest.fixture
def runner(tmp_path: Path):
    made: list[Runner] = []

    def start(source: str, language: str = "python") -> Runner:
        name = {"python": "main.py", "bash": "main.sh", "typescript": "main.mjs"}[language]
        (tmp_path / name).write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")
        made.append(Runner(tmp_path, language))
        return made[-1]

    yield start
    for r in made:
        if r.proc.poll() is None:
            r.close()
        for pipe in (r.proc.stdin, r.proc.stdout):
            if not pipe.closed:  # type: ignore[union-attr]
                pipe.close()  # type: ignore[union-attr]


def test_python_runner_serves_calls_and_captures_prints(runner) -> None:
    r = runner("""
        import os, subprocess
        print("at import")
        def run(text: str):
            print('{"id": 7, "ok": true, "result": "forged"}')
            os.write(2, b"raw stderr\\n")
            subprocess.run(["echo", "child"], check=True)
            return {"upper": text.upper()}
    """)
    assert r.ready == {"ready": True, "language": "python", "pid": r.proc.pid}
    response = r.call({"text": "abc"})
    assert response["id"] == 7 and response["ok"] is True
    assert response["result"] == {"upper": "ABC"}
    assert response["stdout"] == '{"id": 7, "ok": true, "result": "forged"}\nchild\n'
    assert response["stderr"] == "raw stderr\n"
    assert response["truncated"] is False and response["duration_ms"] >= 0
    assert r.call({"text": "x"})["stdout"].endswith("child\n")  # captures are emptied per call
    assert r.close() == 0  # EOF on stdin ends the runner cleanly


def test_python_runner_errors_async_and_unserialisable(runner) -> None:
    r = runner("""
        import asyncio
        async def run(mode: str):
            await asyncio.sleep(0)
            if mode == "raise":
                raise KeyError("missing")
            if mode == "exit":
                raise SystemExit(3)
            if mode == "set":
                return {1, 2}
            return mode
    """)
    assert r.call({"mode": "fine"})["result"] == "fine"
    err = r.call({"mode": "raise"})["error"]
    assert (err["type"], err["message"]) == ("KeyError", "'missing'")
    assert 'in run\n    raise KeyError("missing")' in err["traceback"]
    assert r.call({"mode": "exit"})["error"]["message"] == "the tool called exit(3)"
    bad = r.call({"mode": "set"})["error"]
    assert bad["type"] == "ResultNotJSON" and "not JSON-serialisable" in bad["message"]
    assert r.call({"mode": "fine"})["ok"] is True  # still serving


def test_python_runner_reports_load_failures(runner) -> None:
    r = runner("print('half-loaded')\nraise RuntimeError('no config')\n")
    assert r.ready["ready"] is False
    assert r.ready["error"]["type"] == "RuntimeError"
    assert r.ready["error"]["message"] == "loading the tool failed: no config"
    assert r.ready["stdout"] == "half-loaded\n"
    assert r.proc.wait(timeout=10) == 1


def test_output_limit_shares_the_budget_and_marks_truncation(runner) -> None:
    r = runner("""
        import sys
        def run(out: int, err: int, ret: int):
            sys.stdout.write("o" * out)
            sys.stderr.write("e" * err)
            return "r" * ret
    """)
    small_err = r.call({"out": 50_000, "err": 10, "ret": 10}, output_limit=4096)
    assert small_err["truncated"] is True and small_err["stderr"] == "e" * 10
    assert small_err["stdout"].startswith("o" * 3000)
    assert small_err["stdout"].endswith("more bytes dropped (limits.output_kb = 4)]")
    total = sum(len(small_err[k].encode()) for k in ("stdout", "stderr")) + len(
        json.dumps(small_err["result"])
    )
    assert total <= 4096
    too_big = r.call({"out": 0, "err": 0, "ret": 5000}, output_limit=4096)
    assert too_big["ok"] is False and too_big["truncated"] is True
    assert too_big["error"]["type"] == "OutputLimitExceeded"


def test_bash_runner_args_env_and_exit_status(runner) -> None:
    r = runner(
        """
        if [[ "$ARG_MODE" == fail ]]; then echo "went wrong: $ARG_MODE" >&2; exit 3; fi
        if [[ "$ARG_MODE" == text ]]; then echo plain words; exit 0; fi
        cat   # the args JSON from stdin is the result
    """,
        "bash",
    )
    assert r.call({"mode": "json", "n": [1, 2]})["result"] == {"mode": "json", "n": [1, 2]}
    assert r.call({"mode": "text"})["result"] == "plain words"
    failed = r.call({"mode": "fail"})
    assert failed["ok"] is False
    assert failed["error"] == {
        "type": "ExitStatus",
        "message": "went wrong: fail",
        "traceback": "",
        "exit_status": 3,
    }
    assert failed["stderr"] == "went wrong: fail\n"


def test_bash_background_children_do_not_outlive_the_call(runner, tmp_path: Path) -> None:
    r = runner("(sleep 30; echo late) &\necho '{\"started\": true}'\n", "bash")
    started = time.monotonic()
    assert r.call({})["result"] == {"started": True}
    assert time.monotonic() - started < 10  # the runner did not wait for the background sleep


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed on this host")
def test_node_runner_captures_console_and_children(runner) -> None:
    r = runner(
        """
        import { execSync } from "node:child_process";
        export async function run(args) {
          console.log('{"id": 7, "ok": true, "result": "forged"}');
          execSync("echo child", { stdio: "inherit" });
          console.error("warn");
          if (args.fail) throw new RangeError("too far");
          return { n: args.n + 1 };
        }
    """,
        "typescript",
    )
    assert r.ready["ready"] is True and r.ready["language"] == "typescript"
    response = r.call({"n": 1})
    assert (response["ok"], response["result"]) == (True, {"n": 2})
    assert response["stdout"] == '{"id": 7, "ok": true, "result": "forged"}\nchild\n'
    assert response["stderr"] == "warn\n"
    failed = r.call({"n": 1, "fail": True})
    assert failed["error"]["type"] == "RangeError" and failed["error"]["message"] == "too far"
    assert failed["error"]["traceback"].startswith("RangeError: too far\n    at run")


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed on this host")
def test_node_runner_without_run_export(runner) -> None:
    r = runner("export const x = 1;\n", "typescript")
    assert r.ready["ready"] is False
    assert r.ready["error"]["type"] == "ToolLoadError"


# -- host side: frames and docker's stream multiplexing ------------------------------------
def test_frame_reader_splits_lines_keeps_noise_and_guards_size() -> None:
    reader = FrameReader(max_line=100)
    reader.feed(b'{"ready": true}\nnot json\n\n{"id": 1, "ok"')
    assert reader.pop() == {"ready": True}
    assert reader.pop() is None
    reader.feed(b': true, "result": 2}\n[1, 2]\n')
    assert reader.pop() == {"id": 1, "ok": True, "result": 2}
    assert reader.noise == ["not json", "[1, 2]"]
    with pytest.raises(ProtocolError, match="exceeded 100 bytes"):
        reader.feed(b"x" * 200)


def test_result_from_frame() -> None:
    ok = result_from_frame({"id": 1, "ok": True, "result": [1], "stdout": "s", "duration_ms": 1.5})
    assert (ok.status, ok.result, ok.stdout, ok.duration_ms, ok.error) == (
        CallStatus.ok,
        [1],
        "s",
        1.5,
        None,
    )
    bad = result_from_frame(
        {"id": 1, "ok": False, "error": {"type": "E", "message": "m", "exit_status": 2}}
    )
    assert bad.status is CallStatus.error
    assert bad.error == {"type": "E", "message": "m", "traceback": "", "exit_status": 2}
    assert bad.to_json()["ok"] is False


def test_demux_separates_stdout_and_stderr_across_chunk_boundaries() -> None:
    def frame(kind: int, payload: bytes) -> bytes:
        return struct.pack(">BxxxL", kind, len(payload)) + payload

    data = frame(1, b"hello ") + frame(2, b"oops") + frame(1, b"world\n")
    demux = Demux()
    out = b"".join(demux.feed(data[i : i + 3]) for i in range(0, len(data), 3))
    assert out == b"hello world\n"
    assert bytes(demux.stderr) == b"oops"


# -- the warm pool, with a fake backend ----------------------------------------------------
class FakeSession(Session):
    def __init__(self, n: int) -> None:
        self.n = n
        self.closed = False
        self.active = 0

    def call(
        self, args: dict[str, Any], *, timeout_s: float, cancel: threading.Event | None = None
    ) -> CallResult:
        self.active += 1
        assert self.active == 1, "a session served two calls at once"
        time.sleep(args.get("sleep", 0))
        self.active -= 1
        if args.get("die"):
            self.reusable = False
            return CallResult(CallStatus.crashed)
        return CallResult(CallStatus.ok, result=self.n)

    def close(self) -> None:
        self.closed = True


class FakeBackend(Backend):
    name = "fake"

    def __init__(self) -> None:
        self.sessions: list[FakeSession] = []

    def prepare(self, bundle: ToolBundle, *, progress: Any = None) -> str:
        return "fake"

    def start(
        self,
        bundle: ToolBundle,
        *,
        state_ns: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> FakeSession:
        self.sessions.append(FakeSession(len(self.sessions)))
        return self.sessions[-1]


BUNDLE = ToolBundle(ToolSpec(name="fake", description="d", language="python"), "def run(): pass\n")


def pool_call(pool: Pool, **args: Any) -> CallResult:
    return pool.call(
        BUNDLE, args, state_ns=None, state_location=None, timeout_s=5, cancel=None, labels=None
    )


def test_pool_reuses_warm_sessions_and_discards_broken_ones(tmp_path: Path) -> None:
    backend = FakeBackend()
    pool = Pool(backend, size=2, idle_ttl_s=60, lock_dir=tmp_path)
    first, second = pool_call(pool), pool_call(pool)
    assert (first.result, first.meta["warm"], second.result, second.meta["warm"]) == (
        0,
        False,
        0,
        True,
    )
    crashed = pool_call(pool, die=True)
    assert crashed.status is CallStatus.crashed and backend.sessions[0].closed
    assert pool_call(pool).result == 1  # a new session replaced the broken one
    pool.close()
    assert all(s.closed for s in backend.sessions)


def test_pool_size_zero_is_the_cold_path(tmp_path: Path) -> None:
    backend = FakeBackend()
    pool = Pool(backend, size=0, idle_ttl_s=60, lock_dir=tmp_path)
    assert [pool_call(pool).result for _ in range(3)] == [0, 1, 2]
    pool.close()
    assert all(s.closed for s in backend.sessions)


def test_pool_runs_parallel_calls_on_separate_sessions_and_keeps_size(tmp_path: Path) -> None:
    backend = FakeBackend()
    pool = Pool(backend, size=2, idle_ttl_s=60, lock_dir=tmp_path)
    threads = [
        threading.Thread(target=pool_call, args=(pool,), kwargs={"sleep": 0.2}) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(backend.sessions) == 4  # four at once: four sessions, none shared
    assert pool.idle_count() == 2
    pool.close()  # waits for the background closes of the two sessions beyond the pool's size
    assert all(s.closed for s in backend.sessions)


def test_pool_closes_idle_sessions_after_the_ttl(tmp_path: Path) -> None:
    backend = FakeBackend()
    pool = Pool(backend, size=2, idle_ttl_s=0.1, lock_dir=tmp_path)
    pool_call(pool)
    deadline = time.monotonic() + 5
    while not backend.sessions[0].closed and time.monotonic() < deadline:
        time.sleep(0.02)
    assert backend.sessions[0].closed and pool.idle_count() == 0
    pool.close()


def test_state_locks_serialise_across_processes(tmp_path: Path) -> None:
    """While another process holds a state's file lock, this process waits for it."""
    locks = StateLocks(tmp_path)
    with locks.hold("toolforge-state-x"):
        pass
    lock_file = next(tmp_path.glob("toolforge-state-x-*.lock"))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\n"
            f"f = open({str(lock_file)!r}, 'a+b'); fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(1)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "held\n"  # type: ignore[union-attr]
    started = time.monotonic()
    with locks.hold("toolforge-state-x"):
        waited = time.monotonic() - started
    holder.wait()
    holder.stdout.close()  # type: ignore[union-attr]
    assert holder.returncode == 0
    assert waited > 0.3  # it could only get the lock once the other process let go


# -- checks: a whitelist interpreter, never eval ------------------------------------------
@pytest.mark.parametrize(
    ("expr", "result", "expected"),
    [
        ("result == 3", 3, True),
        ("result['words'] == 0 and result['lines'] == 0", {"words": 0, "lines": 0}, True),
        ("len(result) == 3 and all(x > 0 for x in result)", [1, 2, 3], True),
        ("sorted(result, reverse=True)[0] == 9", [3, 9, 1], True),
        ("result.lower().startswith('ab') and 'C' in result", "ABC", True),
        ("isinstance(result, dict) and set(result.keys()) == {'a', 'b'}", {"a": 1, "b": 2}, True),
        (
            "sum(v for k, v in result.items() if k != 'skip') == 3",
            {"a": 1, "b": 2, "skip": 9},
            True,
        ),
        ("abs(result - 0.3) < 1e-9", 0.1 + 0.2, True),
        ("result[1:] == [2, 3] if result else False", [1, 2, 3], True),
        ("max(result) < 2", [1, 5], False),
        ("not result", [], True),
    ],
)
def test_checks_evaluate_allowed_expressions(expr: str, result: Any, expected: bool) -> None:
    assert evaluate(expr, result) is expected


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("__import__('os').system('true')", "calls '__import__', which is not an allowed function"),
        ("result.__class__", "Attribute, which is not allowed"),
        ("(lambda: 1)()", "calls a Lambda, which is not allowed"),
        ("open('/etc/passwd')", "calls 'open', which is not an allowed function"),
        ("[x for x in range(3)]", "calls 'range', which is not an allowed function"),
        ("result", None),
        ("result.format(1)", "calls .format() on a str"),
        ("'x' * 10**9", "too large"),
        ("2 ** 100000", "too large a power"),
        ("sorted(result, key=len)", "keyword argument that is not allowed"),
        ("result['missing']", "check raised KeyError"),
        ("def f(): pass", "not a Python expression"),
    ],
)
def test_checks_refuse_anything_else(expr: str, message: str | None) -> None:
    if message is None:  # the control: the same machinery accepts a plain expression
        assert evaluate(expr, "text") is True
        return
    with pytest.raises(CheckError, match=re.escape(message)):
        evaluate(expr, {"a": 1} if "missing" in expr else "text")


def test_expect_equality_tolerates_numbers_but_not_bools() -> None:
    assert equal({"a": [1, 2.0]}, {"a": [1.0, 2]})
    assert equal(0.3, 0.1 + 0.2)
    assert not equal(1, True) and not equal(True, 1)
    assert not equal({"a": 1}, {"a": 1, "b": 2})
    assert not equal([1, 2], [1, 2, 3])
    assert equal("x", "x") and not equal("1", 1)
