"""Host side of the runner protocol: frames, and the call loop every backend shares.

The runner (``runners/runner.py``, ``runners/runner.mjs``) speaks newline-delimited JSON:
``{"ready": true}`` once the tool is loaded, then one response per request (see the
runners' docstrings). :class:`FramedSession` holds the part that does not depend on how the
bytes travel: send a request, wait for its answer with a deadline and a cancel flag, kill
the work when either fires, and turn a runner that died into the right :class:`CallStatus`.
A backend supplies four small hooks: write bytes, read what is available, kill, diagnose.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from abc import abstractmethod
from typing import Any

from toolforge.sandbox.backend import CallResult, CallStatus, Session

# A frame can hold the whole output budget, JSON-escaped (up to 6 bytes per byte: \u00XX).
FRAME_SLACK = 64 * 1024
CANCEL_POLL_S = 0.05
STARTUP_ALLOWANCE_S = 60.0
_ids = itertools.count(1)


class ProtocolError(Exception):
    """The runner sent something that is not a frame, or a frame too large to be honest."""


class SessionGone(Exception):
    """The runner was already dead before the request was sent (an idle container killed or
    removed from outside): the request never reached it, so the pool may safely retry."""


def encode_request(call_id: int, args: dict[str, Any], output_limit: int) -> bytes:
    return (json.dumps({"id": call_id, "args": args, "output_limit": output_limit}) + "\n").encode()


def max_frame_bytes(output_limit: int) -> int:
    return output_limit * 6 + FRAME_SLACK


class FrameReader:
    """Split a byte stream into JSON frames. Lines that are not frames are kept as ``noise``
    (a tool cannot reach the protocol fd, but a runner's own crash text can land there)."""

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._buf = bytearray()
        self.frames: list[dict[str, Any]] = []
        self.noise: list[str] = []

    def feed(self, data: bytes) -> None:
        self._buf += data
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > self.max_line:
                    raise ProtocolError(f"a frame exceeded {self.max_line} bytes")
                return
            line = bytes(self._buf[:nl]).strip()
            del self._buf[: nl + 1]
            if not line:
                continue
            try:
                frame = json.loads(line)
            except ValueError:
                frame = None
            if isinstance(frame, dict) and ("id" in frame or "ready" in frame):
                self.frames.append(frame)
            elif len(self.noise) < 50:
                self.noise.append(line[:2000].decode("utf-8", errors="replace"))

    def pop(self) -> dict[str, Any] | None:
        return self.frames.pop(0) if self.frames else None


def result_from_frame(frame: dict[str, Any]) -> CallResult:
    """A response frame → CallResult (status ok or error; kills are decided by the session)."""
    ok = bool(frame.get("ok"))
    error = None
    if not ok:
        raw_error = frame.get("error")
        raw: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
        error = {
            "type": str(raw.get("type") or "Error"),
            "message": str(raw.get("message") or ""),
            "traceback": str(raw.get("traceback") or ""),
        }
        error.update({k: v for k, v in raw.items() if k not in error})
    return CallResult(
        status=CallStatus.ok if ok else CallStatus.error,
        result=frame.get("result") if ok else None,
        error=error,
        stdout=str(frame.get("stdout") or ""),
        stderr=str(frame.get("stderr") or ""),
        duration_ms=float(frame.get("duration_ms") or 0.0),
        truncated=bool(frame.get("truncated")),
    )


def limit_result(
    status: CallStatus, message: str, *, like: CallResult | None = None, **meta: Any
) -> CallResult:
    """A result the host makes up when the runner could not answer (killed, died, cancelled).

    ``like``: the runner's own answer this replaces; what the call printed and how long it
    took are kept."""
    kind = {
        CallStatus.timeout: "Timeout",
        CallStatus.oom: "OutOfMemory",
        CallStatus.cancelled: "Cancelled",
        CallStatus.crashed: "Crashed",
    }.get(status, "Error")
    result = CallResult(
        status=status, error={"type": kind, "message": message, "traceback": ""}, meta=meta
    )
    if like is not None:
        result.stdout, result.stderr, result.duration_ms = (
            like.stdout,
            like.stderr,
            like.duration_ms,
        )
    return result


class FramedSession(Session):
    """A live runner reached through a byte pipe. Subclasses provide the transport hooks."""

    def __init__(self, *, tool: str, output_limit: int, memory_mb: int) -> None:
        self.tool = tool
        self.output_limit = output_limit
        self.memory_mb = memory_mb
        self.reader = FrameReader(max_frame_bytes(output_limit))
        self.load_error: CallResult | None = None
        self.calls = 0
        self.closed = False
        self._close_lock = threading.Lock()

    # -- transport hooks ---------------------------------------------------------------
    @abstractmethod
    def _write(self, data: bytes) -> None:
        """Send bytes to the runner's protocol input."""

    @abstractmethod
    def _read(self, timeout_s: float) -> bytes | None:
        """Protocol bytes available within ``timeout_s`` (b"" if none yet), None at EOF."""

    @abstractmethod
    def _kill(self) -> None:
        """Kill the runner and everything it started, now."""

    @abstractmethod
    def _diagnose(self) -> CallResult:
        """The runner stopped answering (EOF): say why — OOM, a signal, an exit status."""

    # -- the shared logic --------------------------------------------------------------
    def wait_ready(self, timeout_s: float) -> None:
        """Wait for the ready frame; a load failure is kept and returned by every ``call``."""
        outcome = self._await(
            lambda f: "ready" in f, time.monotonic() + timeout_s + STARTUP_ALLOWANCE_S, None
        )
        if isinstance(outcome, CallResult):
            self.reusable = False
            if outcome.status is CallStatus.timeout:
                outcome = limit_result(
                    CallStatus.crashed, f"the runner for {self.tool} did not start in time"
                )
            self.load_error = outcome
            return
        if not outcome.get("ready"):
            self.reusable = False
            self.load_error = result_from_frame({**outcome, "ok": False})

    def call(
        self, args: dict[str, Any], *, timeout_s: float, cancel: threading.Event | None = None
    ) -> CallResult:
        if self.load_error is not None:
            return self.load_error
        if self.closed or not self.reusable:
            return limit_result(CallStatus.crashed, "this session is closed")
        call_id = next(_ids)
        started = time.perf_counter()
        try:
            pending = self._read(0)
        except OSError:
            pending = None
        if pending is None:  # EOF while idle: nothing was sent yet
            self.reusable = False
            raise SessionGone(self.tool)
        if pending:
            self.reader.feed(pending)
        self.calls += 1
        try:
            self._write(encode_request(call_id, args, self.output_limit))
        except OSError:  # the runner is gone (broken pipe): the request was not delivered
            self.reusable = False
            self._kill()
            raise SessionGone(self.tool) from None
        try:
            outcome = self._await(
                lambda f: f.get("id") == call_id, time.monotonic() + timeout_s, cancel
            )
        except BaseException:
            # Ctrl-C or a transport failure mid-call: the work must not go on unsupervised.
            self.reusable = False
            self._kill()
            raise
        if isinstance(outcome, CallResult):
            result = outcome
            if result.status is CallStatus.timeout:
                result.error["message"] = (  # type: ignore[index]
                    f"{self.tool} exceeded its time limit of {timeout_s:g}s; the work was killed"
                )
            if not result.duration_ms:
                result.duration_ms = (time.perf_counter() - started) * 1000
        else:
            result = result_from_frame(outcome)
            if result.error and result.error.get("type") in ("Signal", "MemoryError", "ExitStatus"):
                result = self._check_oom(result)
        result.meta.setdefault("calls", self.calls)
        return result

    def _check_oom(self, result: CallResult) -> CallResult:
        """A child killed by a signal may have been the OOM killer; backends can tell."""
        return result

    def _await(
        self, match: Any, deadline: float, cancel: threading.Event | None
    ) -> dict[str, Any] | CallResult:
        while True:
            frame = self.reader.pop()
            while frame is not None:
                if match(frame):
                    return frame
                frame = self.reader.pop()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.reusable = False
                self._kill()
                return limit_result(CallStatus.timeout, "time limit exceeded; the work was killed")
            if cancel is not None and cancel.is_set():
                self.reusable = False
                self._kill()
                return limit_result(
                    CallStatus.cancelled,
                    f"the call to {self.tool} was cancelled; the work was killed",
                )
            wait = min(remaining, CANCEL_POLL_S) if cancel is not None else remaining
            try:
                data = self._read(wait)
                if data is None:
                    self.reusable = False
                    return self._diagnose()
                if data:
                    self.reader.feed(data)
            except ProtocolError as e:
                self.reusable = False
                self._kill()
                return limit_result(CallStatus.crashed, f"protocol error from the runner: {e}")
