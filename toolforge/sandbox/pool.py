"""The warm pool: running sessions kept per (tool content, state namespace, labels).

A call takes an idle session (or starts one), and gives it back afterwards if it is still
reusable and the pool has room; a session that timed out, crashed, ran out of memory or was
cancelled is never given back. With ``size == 0`` every call gets a new session (the cold
path). Idle sessions older than ``idle_ttl_s`` are closed by a background reaper.

Calls that share one state volume are serialised by :class:`StateLocks`: a thread lock
for this process plus an ``flock`` on a file under ``run_dir/locks``, so separate
processes (CLI, job worker, agents) serialise too. Non-stateful calls run in parallel.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolforge.sandbox.backend import Backend, CallResult, CallStatus, Session
from toolforge.sandbox.protocol import SessionGone, limit_result
from toolforge.spec import ToolBundle

log = logging.getLogger(__name__)
PoolKey = tuple[str, str, str | None, tuple[tuple[str, str], ...]]
MAX_IDLE_TOTAL_FACTOR = 8  # idle sessions kept across all keys: size × this


class StateLocks:
    """One lock per state location, held across threads and processes."""

    def __init__(self, lock_dir: Path) -> None:
        self.lock_dir = lock_dir
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, location: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks[location]
        with lock:
            self.lock_dir.mkdir(parents=True, exist_ok=True)
            with open(self.lock_dir / _lock_file_name(location), "a+b") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _lock_file_name(location: str) -> str:
    """A file name for a volume name or a folder path (readable, and unique by the hash)."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", location)[-80:].strip("_")
    return f"{readable}-{hashlib.sha256(location.encode()).hexdigest()[:8]}.lock"


@dataclass
class _Idle:
    session: Session
    since: float


class Pool:
    def __init__(self, backend: Backend, *, size: int, idle_ttl_s: float, lock_dir: Path) -> None:
        self.backend = backend
        self.size = size
        self.idle_ttl_s = idle_ttl_s
        self.locks = StateLocks(lock_dir)
        self._idle: dict[PoolKey, list[_Idle]] = defaultdict(list)
        self._busy: set[Session] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None
        self._closer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="toolforge-close")
        self._pending: set[Future[None]] = set()
        self.started = 0  # sessions started (for tests and the bench)

    # -- calls ---------------------------------------------------------------------------
    def call(
        self,
        bundle: ToolBundle,
        args: dict[str, Any],
        *,
        state_ns: str | None,
        state_location: str | None,
        timeout_s: float,
        cancel: threading.Event | None,
        labels: dict[str, str] | None,
    ) -> CallResult:
        """Run one call on a pooled session; stateful calls hold their state's lock."""
        key: PoolKey = (
            bundle.name,
            bundle.content_hash(),
            state_ns,
            tuple(sorted((labels or {}).items())),
        )
        if state_location is None:
            return self._call(key, bundle, args, timeout_s, cancel, labels)
        with self.locks.hold(state_location):
            return self._call(key, bundle, args, timeout_s, cancel, labels)

    def _call(
        self,
        key: PoolKey,
        bundle: ToolBundle,
        args: dict[str, Any],
        timeout_s: float,
        cancel: threading.Event | None,
        labels: dict[str, str] | None,
    ) -> CallResult:
        started = time.perf_counter()
        while True:
            session, warm = self._acquire(key)
            if session is None:
                session = self.backend.start(bundle, state_ns=key[2], labels=labels)
                with self._lock:
                    self.started += 1
                    self._busy.add(session)
            try:
                result = session.call(args, timeout_s=timeout_s, cancel=cancel)
            except SessionGone:
                # the session died from outside before the request reached it: a warm one is
                # retried on a fresh session; a fresh one that died at once is a crash
                self._discard(session, wait=True)
                if warm:
                    continue
                result = limit_result(
                    CallStatus.crashed, f"the runner for {bundle.name} died right after starting"
                )
                result.meta["warm"] = False
                return result
            except BaseException:
                self._discard(session, wait=True)
                raise
            break
        result.meta["warm"] = warm
        result.meta["wall_ms"] = round(
            (time.perf_counter() - started) * 1000, 3
        )  # incl. any start-up
        self._release(key, session, wait=not result.ok and not session.reusable)
        return result

    def _acquire(self, key: PoolKey) -> tuple[Session | None, bool]:
        with self._lock:
            idle = self._idle.get(key)
            while idle:
                entry = idle.pop()
                if entry.session.reusable:
                    self._busy.add(entry.session)
                    return entry.session, True
                self._close_later(entry.session)
        return None, False

    def _release(self, key: PoolKey, session: Session, *, wait: bool) -> None:
        with self._lock:
            self._busy.discard(session)
            keep = (
                not self._closed
                and session.reusable
                and len(self._idle[key]) < self.size
                and self._idle_total() < self.size * MAX_IDLE_TOTAL_FACTOR
            )
            if keep:
                self._idle[key].append(_Idle(session, time.monotonic()))
                self._ensure_reaper()
                return
        self._dispose(session, wait=wait)

    def _discard(self, session: Session, *, wait: bool) -> None:
        with self._lock:
            self._busy.discard(session)
        self._dispose(session, wait=wait)

    def _dispose(self, session: Session, *, wait: bool) -> None:
        """Close a session: synchronously after a failure (the container must be gone when
        the caller sees the result), in the background on the cold path."""
        if wait or self._closed:
            _close_quietly(session)
        else:
            self._close_later(session)

    def _close_later(self, session: Session) -> None:
        future = self._closer.submit(_close_quietly, session)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._pending.discard)

    def wait_closed(self) -> None:
        """Wait until every background close has finished (e.g. before removing a volume
        that a just-discarded container still holds)."""
        with self._lock:
            pending = list(self._pending)
        wait(pending)

    def _idle_total(self) -> int:
        return sum(len(v) for v in self._idle.values())

    # -- maintenance ---------------------------------------------------------------------
    def drop(self, match: Callable[[PoolKey], bool]) -> int:
        """Close the idle sessions whose key matches (e.g. before a state reset)."""
        with self._lock:
            doomed = [(k, e) for k, entries in self._idle.items() if match(k) for e in entries]
            for k, _ in doomed:
                self._idle.pop(k, None)
        for _, entry in doomed:
            _close_quietly(entry.session)
        self.wait_closed()
        return len(doomed)

    def idle_count(self) -> int:
        with self._lock:
            return self._idle_total()

    def _ensure_reaper(self) -> None:
        if self._reaper is None or not self._reaper.is_alive():
            self._reaper = threading.Thread(
                target=self._reap_loop, name="toolforge-pool-reaper", daemon=True
            )
            self._reaper.start()

    def _reap_loop(self) -> None:
        interval = max(0.05, min(self.idle_ttl_s / 2, 5.0))
        while not self._stop.wait(interval):
            self.reap_idle()

    def reap_idle(self) -> int:
        now = time.monotonic()
        with self._lock:
            expired = []
            for key, entries in self._idle.items():
                fresh = [e for e in entries if now - e.since < self.idle_ttl_s]
                expired += [e for e in entries if now - e.since >= self.idle_ttl_s]
                self._idle[key] = fresh
        for entry in expired:
            self._close_later(entry.session)
        return len(expired)

    def close(self) -> None:
        """Close every session (idle and busy) and wait until they are gone."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            sessions = [e.session for entries in self._idle.values() for e in entries] + list(
                self._busy
            )
            self._idle.clear()
        self._stop.set()
        for session in sessions:
            self._closer.submit(_close_quietly, session)
        self._closer.shutdown(wait=True)


def _close_quietly(session: Session) -> None:
    """Close a session; a failure (engine gone) is logged, never raised over the caller's own
    error. What stays behind is reaped once this process is gone (``reap_orphans``)."""
    try:
        session.close()
    except Exception as e:  # noqa: BLE001
        log.warning("could not close a sandbox session: %s", e)
