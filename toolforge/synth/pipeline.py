"""The synthesis pipeline: draft → static checks → sandbox build + tests → repair / resample → register.

Why both repair and fresh candidates: measured on the embedded 1.5B model, feeding the
failures back fixed only 2 of 71 first-try failures (it re-emits the same code), while
sampling again with another temperature, seed or worked example often succeeds. So every
attempt after the first makes one repair of the best draft so far (exact failures shown)
plus ``candidates - 1`` fresh drafts; the first draft whose own tests pass in the sandbox
is registered. Nothing that failed is ever registered; the best failing draft and its
report are saved under ``<home>/drafts/`` for inspection.

The pipeline never touches Docker or litellm itself: it gets an :class:`LLM`, a sandbox
(``build`` / ``run_tests``) and a ``register`` function — the Forge wires the real ones,
tests may pass fakes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from toolforge.config import Settings
from toolforge.errors import BuildError, DependencyError, LLMError, SpecError
from toolforge.llm.base import LLM, Usage
from toolforge.llm.structured import ask_structured
from toolforge.spec import TestReport, ToolBundle, write_tool_dir
from toolforge.spec.models import Language
from toolforge.synth import prompts
from toolforge.synth.checks import static_problems
from toolforge.synth.draft import ToolDraft, from_bundle, normalize_name, to_bundle
from toolforge.synth.failures import describe_report

STAGES = ("draft", "check", "build", "test", "register")
FIRST_TEMPERATURE = 0.2
REPAIR_TEMPERATURE = 0.5
FRESH_TEMPERATURES = (0.7, 0.9, 0.6, 1.0)
JSON_ATTEMPTS = 2  # re-asks for unusable JSON inside one draft


class SandboxLike(Protocol):
    def build(self, bundle: ToolBundle, *, progress: Any = None) -> str: ...
    def run_tests(self, bundle: ToolBundle, *, progress: Any = None) -> TestReport: ...


Register = Callable[..., Any]  # Forge.add_bundle(bundle, test=False, report=..., meta=...)


@dataclass
class SynthEvent:
    """A progress event: which stage of which attempt / candidate, and time since the start."""

    stage: str
    attempt: int
    candidate: int
    message: str
    elapsed_s: float


@dataclass
class Plan:
    kind: str  # "draft" | "repair" | "fresh"
    temperature: float
    seed: int
    variant: str
    repair_of: Candidate | None = None


@dataclass
class Candidate:
    """One draft and what became of it."""

    attempt: int
    index: int
    plan: Plan
    raw: str = ""
    bundle: ToolBundle | None = None
    problems: list[str] = field(default_factory=list)
    error: str | None = None
    report: TestReport | None = None
    usage: Usage = field(default_factory=Usage)

    @property
    def passed(self) -> bool:
        return self.report is not None and bool(self.report.cases) and self.report.passed

    @property
    def score(self) -> float:
        """How close it came: -1 no usable draft, 0 static/build failure, else passed fraction."""
        if self.bundle is None:
            return -1.0
        if self.report is None or not self.report.cases:
            return 0.0
        return sum(c.passed for c in self.report.cases) / len(self.report.cases)

    def failures(self) -> str:
        """The exact failures, as shown to the model in a repair prompt."""
        if self.problems:
            return "\n".join(f"- {p}" for p in self.problems)
        if self.error:
            return f"- {self.error}"
        if self.report is not None:
            return describe_report(self.report)
        return "- no result"

    def to_json(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "candidate": self.index,
            "kind": self.plan.kind,
            "temperature": self.plan.temperature,
            "seed": self.plan.seed,
            "example": self.plan.variant,
            "passed": self.passed,
            "problems": self.problems,
            "error": self.error,
            "report": self.report.summary if self.report else None,
            "tokens": self.usage.total_tokens,
            "raw": self.raw,
        }


@dataclass
class SynthesisResult:
    requirement: str
    language: str
    model: str
    passed: bool = False
    name: str | None = None
    version: int | None = None
    attempts: int = 0
    candidates: int = 0
    usage: Usage = field(default_factory=Usage)
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    report: TestReport | None = None
    record: Any = None
    draft_dir: Path | None = None
    history: list[Candidate] = field(default_factory=list)

    @property
    def first_try(self) -> bool:
        return self.passed and self.candidates == 1

    def summary(self) -> str:
        total = sum(self.seconds.values())
        head = (
            f"{self.name}@{self.version} registered"
            if self.passed
            else f"no passing tool for {self.requirement!r}; nothing registered"
        )
        tests = f", tests {self.report.summary}" if self.report else ""
        return (
            f"{head}: {self.attempts} attempt(s), {self.candidates} draft(s){tests}, "
            f"{self.usage.total_tokens} tokens, ${self.usage.cost_usd:.4f}, {total:.1f}s"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "passed": self.passed,
            "language": self.language,
            "model": self.model,
            "requirement": self.requirement,
            "attempts": self.attempts,
            "candidates": self.candidates,
            "tokens": {
                "prompt": self.usage.prompt_tokens,
                "completion": self.usage.completion_tokens,
                "total": self.usage.total_tokens,
            },
            "cost": round(self.usage.cost_usd, 6),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "tests": self.report.summary if self.report else None,
            "draft_dir": str(self.draft_dir) if self.draft_dir else None,
        }


class Synthesizer:
    """Runs the pipeline for one requirement at a time."""

    def __init__(
        self,
        llm: LLM,
        sandbox: SandboxLike,
        register: Register,
        settings: Settings,
        *,
        progress: Callable[[SynthEvent], None] | None = None,
    ) -> None:
        self.llm = llm
        self.sandbox = sandbox
        self.register = register
        self.settings = settings
        self.progress = progress
        self._started = 0.0

    def run(
        self,
        requirement: str,
        *,
        language: Language | str = "python",
        name: str | None = None,
        attempts: int = 3,
        candidates: int = 2,
    ) -> SynthesisResult:
        """Synthesize; the result says whether a tool was registered (``passed``)."""
        lang = Language(language)
        attempts, candidates = max(1, attempts), max(1, candidates)
        self._started = time.monotonic()
        result = SynthesisResult(requirement, lang.value, self.llm.model)
        self._name = normalize_name(name) if name else None
        best: Candidate | None = None
        fresh = 0
        for attempt in range(1, attempts + 1):
            result.attempts = attempt
            for index in range(1, candidates + 1):
                if index == 1 and attempt == 1:
                    plan = Plan("draft", FIRST_TEMPERATURE, 1, prompts.EXAMPLE_VARIANTS[0])
                elif index == 1 and best is not None and best.raw and best.bundle is not None:
                    plan = Plan(
                        "repair",
                        REPAIR_TEMPERATURE,
                        100 + attempt,
                        prompts.EXAMPLE_VARIANTS[0],
                        best,
                    )
                else:
                    fresh += 1
                    plan = Plan(
                        "fresh",
                        FRESH_TEMPERATURES[(fresh - 1) % len(FRESH_TEMPERATURES)],
                        1 + fresh,
                        prompts.EXAMPLE_VARIANTS[fresh % len(prompts.EXAMPLE_VARIANTS)],
                    )
                cand = self._try(requirement, lang, attempt, len(result.history) + 1, plan, result)
                result.history.append(cand)
                result.candidates = len(result.history)
                result.usage = result.usage + cand.usage
                if cand.passed:
                    return self._register(cand, result)
                if best is None or cand.score >= best.score:
                    best = cand
        return self._give_up(best, result)

    # -- one candidate -------------------------------------------------------------------
    def _try(
        self,
        requirement: str,
        lang: Language,
        attempt: int,
        index: int,
        plan: Plan,
        result: SynthesisResult,
    ) -> Candidate:
        cand = Candidate(attempt, index, plan)
        label = {
            "draft": "drafting",
            "repair": "repairing from the failures",
            "fresh": "sampling a fresh draft",
        }
        self._emit(
            "draft", attempt, index, f"{label[plan.kind]} (temperature {plan.temperature:g})"
        )
        if plan.kind == "repair" and plan.repair_of is not None:
            messages = prompts.repair_messages(
                requirement,
                lang,
                plan.repair_of.raw,
                plan.repair_of.failures(),
                variant=plan.variant,
            )
        else:
            messages = prompts.draft_messages(requirement, lang, variant=plan.variant)
        with self._timed(result, "draft"):
            try:
                reply = ask_structured(
                    self.llm,
                    messages,
                    ToolDraft,
                    attempts=JSON_ATTEMPTS,
                    temperature=plan.temperature,
                    seed=plan.seed,
                )
            except LLMError as e:
                cand.raw, cand.error = (
                    e.last_output,
                    f"the model's answer was unusable: {e.message}",
                )
                self._emit("draft", attempt, index, cand.error)
                return cand
        cand.raw, cand.usage = json.dumps(reply.value.model_dump(), ensure_ascii=False), reply.usage
        self._emit("check", attempt, index, "static checks")
        with self._timed(result, "check"):
            try:
                cand.bundle = to_bundle(
                    reply.value, language=lang, requirement=requirement, name=self._name
                )
            except SpecError as e:
                cand.problems = [f"{path or 'draft'}: {msg}" for path, msg in e.problems]
                self._emit("check", attempt, index, f"{len(cand.problems)} problem(s) in the draft")
                return cand
            self._name = self._name or cand.bundle.name
            cand.problems = static_problems(cand.bundle)
        if cand.problems:
            self._emit(
                "check",
                attempt,
                index,
                f"{len(cand.problems)} static problem(s): {cand.problems[0]}",
            )
            return cand
        try:
            self._emit("build", attempt, index, f"building {cand.bundle.name}")
            with self._timed(result, "build"):
                self.sandbox.build(cand.bundle)
            self._emit(
                "test",
                attempt,
                index,
                f"running {len(cand.bundle.spec.tests)} test(s) in the sandbox",
            )
            with self._timed(result, "test"):
                cand.report = self.sandbox.run_tests(cand.bundle)
        except (BuildError, DependencyError) as e:
            cand.error = f"{type(e).__name__}: {e}"
            self._emit("build", attempt, index, cand.error.splitlines()[0])
            return cand
        self._emit("test", attempt, index, f"tests {cand.report.summary}")
        return cand

    # -- endings -------------------------------------------------------------------------
    def _register(self, cand: Candidate, result: SynthesisResult) -> SynthesisResult:
        assert cand.bundle is not None and cand.report is not None
        self._emit("register", cand.attempt, cand.index, f"registering {cand.bundle.name}")
        meta = {
            "requirement": result.requirement,
            "model": result.model,
            "attempts": result.attempts,
            "candidates": result.candidates,
            "winning_kind": cand.plan.kind,
            "tokens": {
                "prompt": result.usage.prompt_tokens,
                "completion": result.usage.completion_tokens,
            },
            "cost_usd": result.usage.cost_usd,
            "seconds": {k: round(v, 3) for k, v in result.seconds.items()},
            "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        with self._timed(result, "register"):
            record, _ = self.register(cand.bundle, test=False, report=cand.report, meta=meta)
        result.passed, result.record = True, record
        result.name, result.version = record.name, record.version
        result.report = (
            record.report if getattr(record, "report", None) is not None else cand.report
        )
        self._emit("done", cand.attempt, cand.index, result.summary())
        return result

    def _give_up(self, best: Candidate | None, result: SynthesisResult) -> SynthesisResult:
        result.report = best.report if best else None
        result.name = best.bundle.name if best and best.bundle else self._name
        result.draft_dir = self._save_drafts(best, result)
        self._emit("failed", result.attempts, result.candidates, result.summary())
        return result

    def _save_drafts(self, best: Candidate | None, result: SynthesisResult) -> Path:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
        folder = self.settings.home / "drafts" / f"{result.name or 'draft'}-{stamp}"
        folder.mkdir(parents=True, exist_ok=True)
        if best is not None and best.bundle is not None:
            write_tool_dir(best.bundle, folder / "tool")
        if best is not None:
            (folder / "failures.txt").write_text(best.failures() + "\n", encoding="utf-8")
            (folder / "last_output.json").write_text(best.raw or "", encoding="utf-8")
        if best is not None and best.report is not None:
            (folder / "report.json").write_text(
                best.report.model_dump_json(indent=2), encoding="utf-8"
            )
        history = {"result": result.to_json(), "candidates": [c.to_json() for c in result.history]}
        (folder / "history.json").write_text(
            json.dumps(history, indent=2, default=str), encoding="utf-8"
        )
        return folder

    # -- helpers -------------------------------------------------------------------------
    def _emit(self, stage: str, attempt: int, candidate: int, message: str) -> None:
        if self.progress is not None:
            self.progress(
                SynthEvent(stage, attempt, candidate, message, time.monotonic() - self._started)
            )

    def _timed(self, result: SynthesisResult, stage: str) -> _Timer:
        return _Timer(result.seconds, stage)


class _Timer:
    def __init__(self, sink: dict[str, float], stage: str) -> None:
        self.sink, self.stage = sink, stage

    def __enter__(self) -> None:
        self.start = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.sink[self.stage] = self.sink.get(self.stage, 0.0) + time.monotonic() - self.start


__all__ = ["Candidate", "SynthEvent", "SynthesisResult", "Synthesizer", "from_bundle"]
