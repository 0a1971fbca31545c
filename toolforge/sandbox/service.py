"""``Sandbox``: the one door to running tools — build, call (through the warm pool), test,
state, and cleanup. Synth, jobs, agents and the CLI use this, never a backend directly.

    sandbox = Sandbox(settings)            # backend from settings.backend ("docker" | "local")
    result = sandbox.call(bundle, {"text": "a b"})
    report = sandbox.run_tests(bundle)
    sandbox.close()                        # also runs at interpreter exit
"""

from __future__ import annotations

import atexit
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import Any

from toolforge.config import Settings
from toolforge.errors import ArgumentError, ToolforgeError, UsageError
from toolforge.sandbox.backend import Backend, CallResult, CallStatus, Progress
from toolforge.sandbox.checks import CheckError, equal, evaluate
from toolforge.sandbox.pool import Pool
from toolforge.sandbox.state import StateSnapshot, StateStore, check_call_ns, check_ns
from toolforge.spec import CaseResult, TestCase, TestReport, ToolBundle, validate_args

_open: weakref.WeakSet[Sandbox] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for sandbox in list(_open):
        sandbox.close()


def make_backend(settings: Settings) -> Backend:
    from toolforge.sandbox import BACKENDS

    try:
        cls = BACKENDS[settings.backend]
    except KeyError:
        raise UsageError(
            f"Unknown sandbox backend {settings.backend!r}",
            hint=f"Use one of: {', '.join(BACKENDS)}.",
        ) from None
    return cls(settings)


class Sandbox:
    def __init__(self, settings: Settings, backend: Backend | None = None) -> None:
        self.settings = settings
        self.backend = backend or make_backend(settings)
        self.pool = Pool(
            self.backend,
            size=settings.pool_size,
            idle_ttl_s=settings.pool_idle_ttl_s,
            lock_dir=settings.run_dir / "locks",
        )
        self._closed = False
        _open.add(self)

    # -- build and call ------------------------------------------------------------------
    def build(self, bundle: ToolBundle, *, progress: Progress | None = None) -> str:
        """Make the tool runnable (its image, for Docker); returns the image tag / id."""
        return self.backend.prepare(bundle, progress=progress)

    def call(
        self,
        bundle: ToolBundle,
        args: dict[str, Any],
        *,
        state_ns: str | None = None,
        timeout_s: float | None = None,
        cancel: threading.Event | None = None,
        labels: dict[str, str] | None = None,
    ) -> CallResult:
        """Validate ``args`` against the tool's schema (ArgumentError before anything starts),
        then run the call on a warm session. Limits are reported in the result's status:
        ``timeout`` / ``oom`` / ``crashed`` / ``cancelled``; the session is then discarded."""
        if self._closed:
            raise ToolforgeError("This sandbox is closed")
        validate_args(bundle.spec, args)
        check_call_ns(bundle.spec, state_ns)
        if timeout_s is not None and timeout_s <= 0:
            raise UsageError(f"--timeout must be positive, got {timeout_s:g}")
        location = self.state_store.location(bundle, state_ns) if bundle.spec.stateful else None
        return self.pool.call(
            bundle,
            args,
            state_ns=state_ns,
            state_location=location,
            timeout_s=timeout_s or bundle.spec.limits.timeout_s,
            cancel=cancel,
            labels=labels,
        )

    # -- tests ---------------------------------------------------------------------------
    def run_tests(self, bundle: ToolBundle, *, progress: Progress | None = None) -> TestReport:
        """Build the tool, run its spec tests in the sandbox, and report every case.

        A stateful tool's tests run in order against a fresh, throwaway state namespace, so
        they neither see nor change the real state."""
        image = self.build(bundle, progress=progress)
        ns = f"test-{uuid.uuid4().hex[:10]}" if bundle.spec.stateful else None
        report = TestReport(
            tool=bundle.name, version=bundle.spec.version, backend=self.backend.name, image=image
        )
        try:
            for index, case in enumerate(bundle.spec.tests):
                if progress:
                    progress(f"test {index + 1}/{len(bundle.spec.tests)}")
                report.cases.append(self._run_case(bundle, index, case, ns))
        finally:
            if ns is not None:
                self.reset_state(bundle, ns)
        return report

    def _run_case(
        self, bundle: ToolBundle, index: int, case: TestCase, ns: str | None
    ) -> CaseResult:
        base: dict[str, Any] = {"index": index, "kind": case.kind, "args": case.args}
        started = time.perf_counter()
        try:
            result = self.call(bundle, case.args, state_ns=ns)
        except ArgumentError as e:
            passed = case.expect_error
            detail = "rejected by the parameter schema" + ("" if passed else f": {e.message}")
            return CaseResult(
                **base,
                passed=passed,
                detail=detail,
                error={"type": "ArgumentError", "message": e.message},
            )
        elapsed = (time.perf_counter() - started) * 1000
        common: dict[str, Any] = {
            **base,
            "got": result.result,
            "error": result.error,
            "duration_ms": round(elapsed, 3),
        }
        if case.expect_error:
            passed = result.status is CallStatus.error
            detail = (
                "failed as expected"
                if passed
                else (
                    f"expected an error, got {result.status.value}"
                    + (f": {result.result!r}" if result.ok else "")
                )
            )
            return CaseResult(**common, passed=passed, detail=detail)
        if not result.ok:
            err = result.error or {}
            return CaseResult(
                **common,
                passed=False,
                detail=f"{result.status.value}: {err.get('type')}: {err.get('message')}",
            )
        if case.kind == "expect":
            passed = equal(case.expect, result.result)
            detail = "" if passed else f"expected {case.expect!r}, got {result.result!r}"
            return CaseResult(**common, expected=case.expect, passed=passed, detail=detail)
        try:
            passed = evaluate(case.check or "", result.result)
            detail = "" if passed else f"check {case.check!r} is false for result {result.result!r}"
        except CheckError as e:
            passed, detail = False, e.message
        return CaseResult(**common, passed=passed, detail=detail)

    # -- state ---------------------------------------------------------------------------
    @property
    def state_store(self) -> StateStore:
        store = getattr(self.backend, "state", None)
        if store is None:
            raise ToolforgeError(f"The {self.backend.name} backend keeps no tool state")
        return store

    def _stateful(self, bundle: ToolBundle, ns: str | None) -> None:
        check_ns(ns)
        if not bundle.spec.stateful:
            raise UsageError(
                f"{bundle.name} is not stateful, so it has no state",
                hint="Set stateful: true in tool.yaml.",
            )

    def show_state(self, bundle: ToolBundle, ns: str | None = None) -> StateSnapshot:
        self._stateful(bundle, ns)
        return self.state_store.show(bundle, ns)

    def export_state(self, bundle: ToolBundle, dest: Path, ns: str | None = None) -> int:
        self._stateful(bundle, ns)
        with self.pool.locks.hold(self.state_store.location(bundle, ns)):
            return self.state_store.export(bundle, ns, Path(dest))

    def import_state(self, bundle: ToolBundle, src: Path, ns: str | None = None) -> int:
        self._stateful(bundle, ns)
        self._drop_sessions(bundle, ns)
        with self.pool.locks.hold(self.state_store.location(bundle, ns)):
            return self.state_store.import_(bundle, ns, Path(src))

    def reset_state(self, bundle: ToolBundle, ns: str | None = None) -> bool:
        self._stateful(bundle, ns)
        self._drop_sessions(bundle, ns)
        with self.pool.locks.hold(self.state_store.location(bundle, ns)):
            return self.state_store.reset(bundle, ns)

    def _drop_sessions(self, bundle: ToolBundle, ns: str | None) -> None:
        """Warm sessions hold the state volume mounted: close them before replacing it."""
        self.pool.drop(lambda key: key[0] == bundle.name and key[2] == ns)

    # -- cleanup -------------------------------------------------------------------------
    def available(self) -> bool:
        """False while the backend cannot run calls (the Docker engine is down or restarting)."""
        return self.backend.available()

    def reap_orphans(self) -> int:
        """Remove sessions (containers) whose owner process is dead; return how many."""
        return self.backend.reap_orphans()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _open.discard(self)
        self.pool.close()
        self.backend.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
