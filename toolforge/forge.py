"""``Forge``: the one object that wires toolforge's parts together for Python users.

    from toolforge import Forge
    with Forge() as forge:
        forge.add("examples/tools/word-count")
        print(forge.run("word-count", text="a b c"))

The CLI is a thin layer over this class. Heavy parts (Docker, litellm) are created on
first use, so a Forge that only reads the registry never imports them.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolforge.config import Settings, load_settings
from toolforge.errors import OutOfMemory, TestsFailed, ToolFailed, ToolforgeError, ToolTimeout
from toolforge.registry import Registry, ToolRecord, parse_ref
from toolforge.spec import TestReport, ToolBundle, load_tool_dir, validate_args

if TYPE_CHECKING:
    from toolforge.llm import LLM
    from toolforge.sandbox.backend import Backend, CallResult
    from toolforge.sandbox.service import Sandbox


class Forge:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        llm: LLM | None = None,
        backend: Backend | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = settings or load_settings(**overrides)
        self.settings.ensure_dirs()
        self._llm = llm
        self._backend = backend

    # -- parts (created lazily) -------------------------------------------------------
    @cached_property
    def registry(self) -> Registry:
        return Registry(self.settings.tools_dir, self.settings.db_path)

    @cached_property
    def sandbox(self) -> Sandbox:
        from toolforge.sandbox.service import Sandbox

        return Sandbox(self.settings, backend=self._backend)

    @property
    def llm(self) -> LLM:
        if self._llm is None:
            from toolforge.llm.resolve import resolve_llm

            self._llm = resolve_llm(self.settings)
        return self._llm

    def close(self) -> None:
        for part in ("sandbox", "jobs", "memory", "registry"):
            obj = self.__dict__.pop(part, None)
            if obj is not None:
                obj.close()

    def __enter__(self) -> Forge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- tools --------------------------------------------------------------------------
    def add(self, path: Path | str, *, test: bool = True, meta: dict[str, Any] | None = None) -> tuple[ToolRecord, bool]:
        """Register the tool folder at ``path``; with ``test`` its tests must pass in the sandbox first."""
        bundle = load_tool_dir(path)
        return self.add_bundle(bundle, test=test, meta=meta)

    def add_bundle(
        self, bundle: ToolBundle, *, test: bool = True, meta: dict[str, Any] | None = None,
        report: TestReport | None = None,
    ) -> tuple[ToolRecord, bool]:
        image = None
        if test and report is None:
            report = self.sandbox.run_tests(bundle)
            if not report.passed:
                raise TestsFailed(bundle.name, report)
        if report is not None:
            image = report.image
        return self.registry.add(bundle, report=report, meta=meta, image=image)

    def tool(self, ref: str) -> ToolRecord:
        return self.registry.resolve(ref)

    def list_tools(self) -> list[ToolRecord]:
        return self.registry.list()

    def remove(self, ref: str) -> list[int]:
        name, version = parse_ref(ref)
        return self.registry.remove(name, version)

    def export(self, ref: str, dest: Path | str) -> Path:
        name, version = parse_ref(ref)
        return self.registry.export(name, dest, version)

    def test(self, ref: str) -> TestReport:
        """Run a registered tool's tests in the sandbox and store the report."""
        record = self.tool(ref)
        report = self.sandbox.run_tests(record.bundle)
        self.registry.set_report(record.name, record.version, report)
        return report

    def call(
        self, ref: str, args: dict[str, Any] | None = None, *, state_ns: str | None = None,
        timeout_s: float | None = None,
    ) -> CallResult:
        """Validate ``args`` and call the tool in the sandbox; return the full CallResult."""
        record = self.tool(ref)
        args = validate_args(record.spec, args or {})
        return self.sandbox.call(record.bundle, args, state_ns=state_ns, timeout_s=timeout_s)

    def run(self, ref: str, /, *, state_ns: str | None = None, timeout_s: float | None = None, **args: Any) -> Any:
        """Call the tool and return its result; raise ToolFailed / ToolTimeout / OutOfMemory."""
        result = self.call(ref, args, state_ns=state_ns, timeout_s=timeout_s)
        raise_for_result(self.tool(ref), result, timeout_s)
        return result.result


def raise_for_result(record: ToolRecord, result: CallResult, timeout_s: float | None = None) -> None:
    """Turn a failed CallResult into the matching ToolforgeError."""
    from toolforge.sandbox.backend import CallStatus

    status = result.status
    if status is CallStatus.ok:
        return
    if status is CallStatus.timeout:
        raise ToolTimeout(record.name, timeout_s or record.spec.limits.timeout_s)
    if status is CallStatus.oom:
        raise OutOfMemory(record.name, record.spec.limits.memory_mb)
    error = result.error or {}
    if status is CallStatus.error or status is CallStatus.crashed:
        raise ToolFailed(
            record.name, str(error.get("type", status.value)), str(error.get("message", "")),
            str(error.get("traceback", "")),
        )
    raise ToolforgeError(f"{record.name}: unexpected call status {status}")
