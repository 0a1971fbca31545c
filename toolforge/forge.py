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
from toolforge.errors import (
    Interrupted,
    OutOfMemory,
    OutputTooLarge,
    TestsFailed,
    ToolFailed,
    ToolforgeError,
    ToolTimeout,
    UsageError,
)
from toolforge.registry import Registry, ToolRecord, parse_ref
from toolforge.spec import TestReport, ToolBundle, load_tool_dir, validate_args

if TYPE_CHECKING:
    import threading

    from toolforge.agents import AgentSpec, AgentStore, SolveResult
    from toolforge.jobs.api import JobHandle
    from toolforge.jobs.store import JobStore
    from toolforge.llm import LLM
    from toolforge.memory.store import Graph, MemoryStore
    from toolforge.sandbox.backend import Backend, CallResult
    from toolforge.sandbox.service import Sandbox
    from toolforge.sandbox.state import StateSnapshot
    from toolforge.synth.pipeline import SynthesisResult


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
        for part in ("sandbox", "jobs", "memory_store", "agents", "registry"):
            obj = self.__dict__.pop(part, None)
            if obj is not None:
                obj.close()

    def __enter__(self) -> Forge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- tools --------------------------------------------------------------------------
    def add(
        self, path: Path | str, *, test: bool = True, meta: dict[str, Any] | None = None
    ) -> tuple[ToolRecord, bool]:
        """Register the tool folder at ``path``; with ``test`` its tests must pass in the sandbox first."""
        bundle = load_tool_dir(path)
        return self.add_bundle(bundle, test=test, meta=meta)

    def add_bundle(
        self,
        bundle: ToolBundle,
        *,
        test: bool = True,
        meta: dict[str, Any] | None = None,
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

    # -- run / test / state (sandbox runtime) ----------------------------------------------
    def test(self, ref: str, *, progress: Any = None) -> TestReport:
        """Run a registered tool's tests in the sandbox and store the report in the registry."""
        record = self.tool(ref)
        report = self.sandbox.run_tests(record.bundle, progress=progress)
        self.registry.set_report(record.name, record.version, report)
        if report.image:
            self.registry.set_image(record.name, record.version, report.image)
        return report

    def call(
        self,
        ref: str,
        args: dict[str, Any] | None = None,
        *,
        state_ns: str | None = None,
        timeout_s: float | None = None,
        cancel: threading.Event | None = None,
        labels: dict[str, str] | None = None,
        progress: Any = None,
    ) -> CallResult:
        """Call the tool in the sandbox and return the full CallResult (never raises for a
        tool failure: see ``status``). Arguments are validated against the schema first
        (ArgumentError, exit 2) — before anything is built or started."""
        record = self.tool(ref)
        validate_args(record.spec, args or {})
        if progress is not None:
            self.sandbox.build(record.bundle, progress=progress)
        return self.sandbox.call(
            record.bundle,
            args or {},
            state_ns=state_ns,
            timeout_s=timeout_s,
            cancel=cancel,
            labels=labels,
        )

    def run(
        self,
        ref: str,
        /,
        *,
        state_ns: str | None = None,
        timeout_s: float | None = None,
        **args: Any,
    ) -> Any:
        """Call the tool and return its result; raise ToolFailed (exit 1), ToolTimeout /
        OutOfMemory (exit 4) or Interrupted (cancelled) when it does not succeed."""
        record = self.tool(ref)
        result = self.sandbox.call(record.bundle, args, state_ns=state_ns, timeout_s=timeout_s)
        raise_for_result(record, result, timeout_s)
        return result.result

    def state_show(self, ref: str, ns: str | None = None) -> StateSnapshot:
        return self.sandbox.show_state(self.tool(ref).bundle, ns)

    def state_export(self, ref: str, dest: Path | str, ns: str | None = None) -> int:
        return self.sandbox.export_state(self.tool(ref).bundle, Path(dest), ns)

    def state_import(self, ref: str, src: Path | str, ns: str | None = None) -> int:
        src = Path(src)
        if not src.is_file():
            raise UsageError(
                f"{src} is not a file",
                hint="Pass a .tar.gz made by: toolforge state export NAME FILE",
            )
        return self.sandbox.import_state(self.tool(ref).bundle, src, ns)

    def state_reset(self, ref: str, ns: str | None = None) -> bool:
        return self.sandbox.reset_state(self.tool(ref).bundle, ns)

    # -- synth --------------------------------------------------------------------------
    def generate(
        self,
        requirement: str,
        *,
        language: str = "python",
        name: str | None = None,
        model: str | None = None,
        attempts: int = 3,
        candidates: int = 2,
        progress: Any = None,
        check: bool = True,
    ) -> SynthesisResult:
        """Have the model write a tool for ``requirement``, prove it in the sandbox, register it.

        Each attempt after the first repairs the best draft from its exact failures and
        samples ``candidates - 1`` fresh drafts. When nothing passes, nothing is registered
        and (with ``check``) SynthesisFailed (exit 1) names the folder holding the last
        draft; its ``result`` attribute is the :class:`SynthesisResult`.
        """
        from toolforge.errors import SynthesisFailed, UsageError
        from toolforge.synth.pipeline import Synthesizer

        if not requirement.strip():
            raise UsageError(
                "The requirement is empty",
                hint='Describe the tool, e.g. toolforge generate "a tool that ..."',
            )
        llm = self.llm if model is None else self._llm_for(model)
        synth = Synthesizer(llm, self.sandbox, self.add_bundle, self.settings, progress=progress)
        result = synth.run(
            requirement, language=language, name=name, attempts=attempts, candidates=candidates
        )
        if check and not result.passed:
            raise SynthesisFailed(
                result.summary(),
                draft_dir=str(result.draft_dir),
                attempts=result.attempts,
                result=result,
            )
        return result

    def _llm_for(self, model: str) -> LLM:
        from toolforge.llm.resolve import resolve_llm

        return resolve_llm(self.settings, model)

    # -- jobs ---------------------------------------------------------------------------
    @cached_property
    def jobs(self) -> JobStore:
        """The durable job queue (SQLite in WAL, in the same database file as the registry)."""
        from toolforge.jobs.store import SQLiteJobStore

        return SQLiteJobStore(self.settings.db_path)

    def submit(
        self,
        ref: str,
        args: dict[str, Any] | None = None,
        *,
        state_ns: str | None = None,
        priority: int = 0,
        timeout_s: float | None = None,
        max_attempts: int = 3,
    ) -> JobHandle:
        """Queue a call for a worker; an unknown tool or bad args raise here (exit 2), never queued.

        Higher ``priority`` runs first. Start a worker with ``toolforge worker start`` (or
        :meth:`start_worker`); ``toolforge run --async`` starts one itself.
        """
        from toolforge.jobs.api import submit

        return submit(
            self.jobs,
            self.registry,
            ref,
            args,
            state_ns=state_ns,
            priority=priority,
            timeout_s=timeout_s,
            max_attempts=max_attempts,
        )

    def job(self, job_id: str) -> JobHandle:
        """A handle on an existing job; NotFoundError (exit 2) for an unknown id."""
        from toolforge.jobs.api import JobHandle

        return JobHandle(self.jobs, self.jobs.get(job_id).id)

    def start_worker(
        self, *, concurrency: int | None = None, wait_s: float = 10.0
    ) -> tuple[int, bool]:
        """Start the detached background worker unless one is alive; return (pid, started)."""
        from toolforge.jobs import daemon

        return daemon.start(self.settings, concurrency=concurrency, wait_s=wait_s)

    # -- agents ---------------------------------------------------------------------------
    @cached_property
    def agents(self) -> AgentStore:
        """Agent specs (versioned), the performance registry and run traces."""
        from toolforge.agents.store import AgentStore

        return AgentStore(self.settings)

    def solve(
        self,
        task: str,
        *,
        topology: str = "auto",
        model: str | None = None,
        subtasks: list[str] | None = None,
        strategies: list[str] | None = None,
        merge: str = "consensus",
        agent: str | None = None,
        max_steps: int | None = None,
        max_tokens: int | None = None,
        max_seconds: float | None = None,
        progress: Any = None,
        remember: str | None = None,
    ) -> SolveResult:
        """Solve ``task`` with agents that call the registered tools; the run is recorded.

        ``topology``: single | vertical | horizontal | auto; ``merge`` (horizontal):
        consensus | majority_vote | best_score. Budgets override every agent's own.
        ``remember``: a graph-memory name; the run's key events are recorded there.
        """
        from toolforge.agents.coordinator import Coordinator, SolveRequest

        request = SolveRequest(
            task, topology, subtasks, strategies, merge, agent, max_steps, max_tokens, max_seconds
        )
        result = Coordinator(self, model=model, progress=progress).solve(request)
        if remember:
            self.remember_run(result.run_id, graph=remember)
        return result

    def remember_run(self, run_id: str, *, graph: str = "default") -> list[int]:
        """Record a run's key events (all but raw model calls) as event nodes in graph memory."""
        from toolforge.memory.tools import record_events

        events = [e for e in self.agents.events(run_id) if e["kind"] != "model_call"]
        return record_events(self.memory(graph), run_id, events)

    def generate_agent(
        self, task: str, *, name: str | None = None, model: str | None = None
    ) -> AgentSpec:
        """Have the model write an AgentSpec specialised for ``task`` and register it."""
        from toolforge.agents.coordinator import Coordinator

        return Coordinator(self, model=model).generate_agent(task, name=name)

    # -- memory ---------------------------------------------------------------------------
    @cached_property
    def memory_store(self) -> MemoryStore:
        """The graph-memory database (its own SQLite file, so agents' writes never wait on jobs)."""
        from toolforge.memory.store import MemoryStore

        model = self.settings.embedding_model
        embedder = self._llm_for(model).embed if model else None
        return MemoryStore(
            self.settings.home / "memory.db", embedder=embedder, embed_model=model or ""
        )

    def memory(self, graph: str = "default", *, create: bool = True) -> Graph:
        """The knowledge graph ``graph`` (made on first use unless ``create`` is False)."""
        return self.memory_store.graph(graph, create=create)


def raise_for_result(
    record: ToolRecord, result: CallResult, timeout_s: float | None = None
) -> None:
    """Turn a failed CallResult into the matching ToolforgeError."""
    from toolforge.sandbox.backend import CallStatus

    status = result.status
    if status is CallStatus.ok:
        return
    if status is CallStatus.timeout:
        raise ToolTimeout(record.name, timeout_s or record.spec.limits.timeout_s)
    if status is CallStatus.oom:
        raise OutOfMemory(record.name, record.spec.limits.memory_mb)
    if status is CallStatus.cancelled:
        raise Interrupted(f"The call to {record.name} was cancelled; the work was killed")
    error = result.error or {}
    if error.get("type") == "OutputLimitExceeded":
        raise OutputTooLarge(record.name, str(error.get("message", "the output is too large")))
    if status is CallStatus.error or status is CallStatus.crashed:
        raise ToolFailed(
            record.name,
            str(error.get("type", status.value)),
            str(error.get("message", "")),
            str(error.get("traceback", "")),
        )
    raise ToolforgeError(f"{record.name}: unexpected call status {status}")
