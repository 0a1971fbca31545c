"""toolforge runner for Python and Bash tools: load the tool once, serve calls over framed JSON.

This file is copied into every tool image as /opt/toolforge/runner.py and run by the local
backend as a host process. It imports only the standard library (it runs on the image's
python3, with no toolforge package around).

Protocol (newline-delimited JSON, one object per line):

* on start the runner writes ``{"ready": true}`` once the tool is loaded, or
  ``{"ready": false, "error": {...}}`` and exits;
* each request ``{"id", "args", "output_limit"?}`` gets one response ``{"id", "ok",
  "result" | "error": {"type", "message", "traceback"}, "stdout", "stderr", "duration_ms",
  "truncated"}``.

The protocol travels on a private duplicate of the original stdout/stdin; file descriptors 1
and 2 are pointed at capture files and fd 0 at /dev/null before the tool is imported, so
nothing the tool (or a process it starts) prints can corrupt a frame.

Python tools: ``main.py`` is imported once and ``run(**args)`` called per request (an
``async def run`` is awaited). Bash tools: ``main.sh`` runs once per request with the args
JSON on stdin and ``ARG_<NAME>`` environment variables; its stdout is the result (parsed as
JSON when it is JSON, else the stripped text); a non-zero exit is an error whose message is
the script's stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import inspect
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback

TOOL_DIR = os.path.abspath(os.environ.get("TOOLFORGE_TOOL_DIR", "/opt/tool"))
LANGUAGE = os.environ.get("TOOLFORGE_LANGUAGE", "python")
DEFAULT_OUTPUT_LIMIT = int(os.environ.get("TOOLFORGE_OUTPUT_LIMIT", str(1024 * 1024)))
# Inside a container the runner may kill every other process after a call (strays the tool
# left behind); on a host (local backend) it must never do that.
SWEEP = os.environ.get("TOOLFORGE_SWEEP") == "1"
MARKER = "\n[toolforge: output truncated, {n} more bytes dropped (limits.output_kb = {kb})]"
MARKER_RESERVE = 120
TRACEBACK_MAX = 8000


class Capture:
    """A file that fd 1 or fd 2 points at during a call; emptied before each call."""

    def __init__(self, fd: int) -> None:
        self.file = tempfile.TemporaryFile(prefix="toolforge-capture-")  # noqa: SIM115 - lives as long as the runner
        self.fileno = self.file.fileno()
        os.dup2(self.fileno, fd)

    def reset(self) -> None:
        os.ftruncate(self.fileno, 0)
        os.lseek(self.fileno, 0, os.SEEK_SET)

    def size(self) -> int:
        return os.fstat(self.fileno).st_size

    def read(self, limit: int) -> bytes:
        """At most ``limit`` bytes from the start (never loads a huge capture into memory)."""
        return os.pread(self.fileno, max(limit, 0), 0) if limit > 0 else b""


class Protocol:
    """Frames on private duplicates of the runner's original stdin / stdout."""

    def __init__(self) -> None:
        self.out_fd = os.dup(1)
        self.inp = os.fdopen(os.dup(0), "rb", buffering=0)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        for fd in (self.out_fd, self.inp.fileno()):
            os.set_inheritable(fd, False)

    def send(self, frame: dict) -> None:
        data = (json.dumps(frame, ensure_ascii=True, default=repr) + "\n").encode()
        view = memoryview(data)
        while view:
            view = view[os.write(self.out_fd, view) :]

    def receive(self) -> dict | None:
        line = self.inp.readline()
        while line and not line.strip():
            line = self.inp.readline()
        if not line:
            return None
        return json.loads(line)


def error_info(exc: BaseException) -> dict:
    """The error object of a frame; the traceback starts at the tool's code, not the runner's."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    message = str(exc) if not isinstance(exc, SystemExit) else f"the tool called exit({exc.code!r})"
    return {"type": type(exc).__name__, "message": message, "traceback": text[-TRACEBACK_MAX:]}


def fit_output(
    result_json: str | None, out: Capture, err: Capture, limit: int
) -> tuple[str, str, bool, bool]:
    """Share the output budget: the result first, then stdout and stderr (each capped with a marker).

    Returns (stdout, stderr, truncated, result_too_big).
    """
    kb = max(1, limit // 1024)
    result_len = len(result_json.encode()) if result_json is not None else 0
    too_big = result_len > limit
    remaining = max(0, limit - (0 if too_big else result_len) - 2 * MARKER_RESERVE)
    sizes = [out.size(), err.size()]
    keep = list(sizes)
    if sum(sizes) > remaining:
        half = remaining // 2
        if sizes[0] <= half:
            keep = [sizes[0], remaining - sizes[0]]
        elif sizes[1] <= half:
            keep = [remaining - sizes[1], sizes[1]]
        else:
            keep = [half, remaining - half]
    texts = []
    truncated = too_big
    for capture, size, n in zip((out, err), sizes, keep, strict=False):
        text = capture.read(n).decode("utf-8", errors="replace")
        if size > n:
            truncated = True
            text += MARKER.format(n=size - n, kb=kb)
        texts.append(text)
    return texts[0], texts[1], truncated, too_big


class Tool:
    """The loaded tool: ``call(args)`` returns the result or raises the tool's exception."""

    def __init__(self) -> None:
        if LANGUAGE == "bash":
            self.script = os.path.join(TOOL_DIR, "main.sh")
            if not os.path.isfile(self.script):
                raise ToolLoadError(f"{self.script} is missing")
            self.call = self.call_bash
            return
        path = os.path.join(TOOL_DIR, "main.py")
        sys.path.insert(0, TOOL_DIR)
        spec = importlib.util.spec_from_file_location("main", path)
        if spec is None or spec.loader is None:
            raise ToolLoadError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules["main"] = module
        spec.loader.exec_module(module)
        run = getattr(module, "run", None)
        if not callable(run):
            raise ToolLoadError(
                "main.py defines no run() function (it must: def run(**args) -> result)"
            )
        self.run = run
        self.call = self.call_python

    def call_python(self, args: dict, limit: int):
        result = self.run(**args)
        if inspect.isawaitable(result):
            result = asyncio.run(_await(result))
        return result

    def call_bash(self, args: dict, limit: int):
        env = dict(os.environ)
        for key, value in args.items():
            env["ARG_" + re.sub(r"[^A-Za-z0-9]", "_", key).upper()] = _env_value(value)
        with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as stdout:
            stdin.write(json.dumps(args).encode())
            stdin.seek(0)
            proc = subprocess.Popen(
                ["bash", self.script],
                stdin=stdin,
                stdout=stdout,
                stderr=2,
                env=env,
                cwd=TOOL_DIR,
                start_new_session=True,
            )
            try:
                proc.wait()
            finally:
                _kill_group(proc.pid)
            if proc.returncode != 0:
                raise ScriptFailed(proc.returncode)
            size = os.fstat(stdout.fileno()).st_size
            if size > limit:
                raise OutputLimitExceeded(size, limit)
            raw = os.pread(stdout.fileno(), size, 0)
        text = raw.decode("utf-8", errors="replace").strip()
        try:
            return json.loads(text)
        except ValueError:
            return text


class ToolLoadError(Exception):
    """The tool could not be loaded (missing file, no run function)."""


class ScriptFailed(Exception):
    """A bash tool exited non-zero; the message is filled in from its captured stderr."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class OutputLimitExceeded(Exception):
    """A bash tool printed more than the output limit on stdout (its result)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(_too_big(size, limit)["message"])


async def _await(awaitable):
    return await awaitable


def _env_value(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return json.dumps(value)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pgid, signal.SIGKILL)


def sweep_strays() -> None:
    """Kill every process in the container except init and the runner, and wait until they
    are gone (reaped by us or by init), so strays cannot eat the next call's pids limit."""
    if not SWEEP:
        return
    me = os.getpid()
    deadline = time.monotonic() + 2.0
    while True:
        others = [int(e) for e in os.listdir("/proc") if e.isdigit() and int(e) not in (1, me)]
        for pid in others:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        if not others or time.monotonic() > deadline:
            return
        time.sleep(0.002)


def serve(proto: Protocol, tool: Tool, out: Capture, err: Capture) -> None:
    while True:
        request = proto.receive()
        if request is None:
            return
        proto.send(handle(request, tool, out, err))


def handle(request: dict, tool: Tool, out: Capture, err: Capture) -> dict:
    """Run one call with fds 1/2 captured; build its response frame within the output limit."""
    limit = int(request.get("output_limit") or DEFAULT_OUTPUT_LIMIT)
    out.reset()
    err.reset()
    start = time.perf_counter()
    error = None
    result = result_json = None
    try:
        result = tool.call(request.get("args") or {}, limit)
    except ScriptFailed as e:
        error = _script_error(e.status, err)
    except BaseException as e:  # noqa: BLE001 - the tool's failure is reported, the runner lives on
        error = error_info(e)
        if isinstance(e, OutputLimitExceeded):
            error["traceback"] = ""
    else:
        try:
            result_json = json.dumps(result, ensure_ascii=False)
        except (TypeError, ValueError) as e:
            error = {
                "type": "ResultNotJSON",
                "traceback": "",
                "message": f"the tool returned a value that is not JSON-serialisable: {e}",
            }
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        sweep_strays()
    duration = (time.perf_counter() - start) * 1000
    stdout, stderr, truncated, too_big = fit_output(result_json, out, err, limit)
    if result_json is not None and too_big:
        error = _too_big(len(result_json.encode()), limit)
    truncated = truncated or (error or {}).get("type") == "OutputLimitExceeded"
    response: dict = {"id": request.get("id"), "ok": error is None}
    if error is None:
        response["result"] = result
    else:
        response["error"] = error
    response.update(stdout=stdout, stderr=stderr, duration_ms=duration, truncated=truncated)
    return response


def _too_big(size: int, limit: int) -> dict:
    return {
        "type": "OutputLimitExceeded",
        "traceback": "",
        "message": f"the result is {size} bytes, over the output limit of {max(1, limit // 1024)} KB "
        "(limits.output_kb); return less data",
    }


def _script_error(status: int, err: Capture) -> dict:
    stderr = err.read(4000).decode("utf-8", errors="replace").strip()
    if status < 0:
        name = (
            signal.Signals(-status).name
            if -status in signal.Signals._value2member_map_
            else str(-status)
        )
        message = f"main.sh was killed by signal {name}" + (f": {stderr}" if stderr else "")
        return {"type": "Signal", "message": message, "traceback": "", "signal": -status}
    message = stderr or f"main.sh exited with status {status}"
    return {"type": "ExitStatus", "message": message, "traceback": "", "exit_status": status}


def main() -> int:
    proto = Protocol()
    out, err = Capture(1), Capture(2)
    # sys.stdout / sys.stderr still wrap fds 1 and 2, which now point at the captures; the
    # runner runs with -u, so the tool's prints land there in order with its raw fd writes.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    try:
        tool = Tool()
    except BaseException as e:  # noqa: BLE001 - report any load failure as a frame
        info = error_info(e)
        if not isinstance(e, ToolLoadError):
            info["message"] = f"loading the tool failed: {info['message']}"
        stdout, stderr, _, _ = fit_output(None, out, err, DEFAULT_OUTPUT_LIMIT)
        proto.send({"ready": False, "error": info, "stdout": stdout, "stderr": stderr})
        return 1
    proto.send({"ready": True, "language": LANGUAGE, "pid": os.getpid()})
    serve(proto, tool, out, err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
