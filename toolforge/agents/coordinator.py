"""The coordinator: validates a solve request, classifies the task, picks agents, runs a
topology, and records the run, its trace and every agent's performance.

Every model call of the coordinator itself (classification, topology choice, plans,
merges) goes into the run's trace beside the agents' own calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from toolforge.agents import prompts
from toolforge.agents.loop import AgentLoop, AgentResult
from toolforge.agents.spec import (
    ALL_TOOLS,
    AgentSpec,
    Budget,
    agent_name,
    default_agent,
    slug_label,
)
from toolforge.agents.store import AgentStore, now_iso
from toolforge.agents.toolbox import META_TOOLS, Toolbox
from toolforge.agents.trace import Tracer, new_run_id
from toolforge.errors import EnvironmentUnavailable, Interrupted, ToolforgeError, UsageError
from toolforge.llm.base import LLM, Message, Usage

if TYPE_CHECKING:
    from toolforge.forge import Forge

TOPOLOGIES = ("single", "vertical", "horizontal", "auto")
MERGES = ("consensus", "majority_vote", "best_score")
Progress = Callable[[str], None]


@dataclass
class SolveRequest:
    """What ``solve`` was asked; :meth:`checked` refuses bad input before any model call."""

    task: str
    topology: str = "auto"
    subtasks: list[str] | None = None
    strategies: list[str] | None = None
    merge: str = "consensus"
    agent: str | None = None
    max_steps: int | None = None
    max_tokens: int | None = None
    max_seconds: float | None = None

    def checked(self) -> SolveRequest:
        self.task = (self.task or "").strip()
        if not self.task:
            raise UsageError(
                "The task is empty", hint='Say what to do: toolforge solve "count the words in …"'
            )
        if self.topology not in TOPOLOGIES:
            raise UsageError(
                f"Unknown topology {self.topology!r}: use one of {', '.join(TOPOLOGIES)}"
            )
        if self.merge not in MERGES:
            raise UsageError(
                f"Unknown merge strategy {self.merge!r}: use one of {', '.join(MERGES)}"
            )
        self.subtasks = _clean_list(self.subtasks, "--subtasks")
        self.strategies = _clean_list(self.strategies, "--strategies")
        if self.subtasks is not None and self.topology not in ("vertical", "auto"):
            raise UsageError("--subtasks only applies to --topology vertical")
        if self.strategies is not None and self.topology not in ("horizontal", "auto"):
            raise UsageError("--strategies only applies to --topology horizontal")
        if self.subtasks is not None and self.strategies is not None:
            raise UsageError("Give --subtasks (vertical) or --strategies (horizontal), not both")
        if self.strategies is not None and len(self.strategies) < 2:
            raise UsageError(
                f"A horizontal run needs at least 2 strategies (got {len(self.strategies)})",
                hint="List several, comma-separated: --strategies 'by hand,with a tool,estimate'",
            )
        Budget.checked(
            max_steps=1 if self.max_steps is None else self.max_steps,
            max_tokens=self.max_tokens,
            max_seconds=self.max_seconds,
        )
        return self


def _clean_list(items: list[str] | None, option: str) -> list[str] | None:
    if items is None:
        return None
    cleaned = [i.strip() for i in items if i and i.strip()]
    if not cleaned:
        raise UsageError(f"{option} is empty", hint=f"Give at least one item, e.g. {option} 'a;b'")
    return cleaned


@dataclass
class SolveResult:
    run_id: str
    task: str
    task_type: str
    topology: str
    reason: str
    answer: str
    status: str  # ok | stopped | failed
    stop_reason: str | None = None
    agents: list[AgentResult] = field(default_factory=list)
    merge: dict[str, Any] | None = None
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "task": self.task,
            "task_type": self.task_type,
            "topology": self.topology,
            "reason": self.reason,
            "status": self.status,
            "stop_reason": self.stop_reason,
            "answer": self.answer,
            "agents": [a.to_json() for a in self.agents],
            "merge": self.merge,
            "prompt_tokens": self.usage.prompt_tokens,
            "completion_tokens": self.usage.completion_tokens,
            "cost_usd": self.usage.cost_usd,
            "latency_s": round(self.latency_s, 3),
        }


class Coordinator:
    """One coordinator per solve (it holds the run's tracer)."""

    def __init__(
        self,
        forge: Forge,
        *,
        llm: LLM | None = None,
        model: str | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.forge = forge
        self.model = model
        self._llm = llm
        self.progress = progress or (lambda message: None)
        self.store: AgentStore = forge.agents
        self.tracer: Tracer | None = None
        self.request: SolveRequest | None = None

    # -- models --------------------------------------------------------------------------
    @property
    def llm(self) -> LLM:
        if self._llm is None:
            if self.model:
                from toolforge.llm.resolve import resolve_llm

                self._llm = resolve_llm(self.forge.settings, self.model)
            else:
                self._llm = self.forge.llm
        return self._llm

    def llm_for(self, spec: AgentSpec) -> LLM:
        """The run's model, unless the agent names its own and the run did not force one."""
        if spec.model and not self.model and self._llm is None:
            from toolforge.llm.resolve import resolve_llm

            return resolve_llm(self.forge.settings, spec.model)
        return self.llm

    def ask(self, purpose: str, system: str, user: str, schema: type[BaseModel]) -> Any:
        """One structured call of the coordinator, traced; returns the validated value."""
        from toolforge.llm.structured import ask_structured

        messages: list[Message] = [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ]
        t0 = time.monotonic()
        structured = ask_structured(self.llm, messages, schema)
        if self.tracer:
            self.tracer.structured_call(None, purpose, messages, structured, time.monotonic() - t0)
        return structured.value

    def write(self, purpose: str, system: str, user: str) -> str:
        """One free-text call of the coordinator (integration, consensus), traced."""
        messages: list[Message] = [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ]
        t0 = time.monotonic()
        completion = self.llm.complete(messages)
        completion.latency_s = completion.latency_s or time.monotonic() - t0
        if self.tracer:
            self.tracer.model_call(None, purpose, messages, completion)
        return (completion.text or "").strip()

    # -- task types and agents -----------------------------------------------------------
    def classify(self, task: str) -> str:
        """A short task-type label for ``task``, chosen by the model (known labels preferred)."""
        known = sorted(
            {s.task_type for s in self.store.stats() if s.task_type}
            | {t for a in self.store.list() for t in a.task_types}
        )
        reply = self.ask(
            "classify",
            prompts.CLASSIFY.format(known=", ".join(known) or "none yet"),
            task,
            prompts.TaskTypeReply,
        )
        return slug_label(reply.task_type) or "general"

    def pick_agent(self, task_type: str, fallback: AgentSpec) -> tuple[AgentSpec, str]:
        """A registered agent that fits ``task_type``, else ``fallback``.

        First the recommended agent (best success rate on this task type, if it ever
        succeeded and is still registered), then one whose spec lists the task type.
        """
        rec = self.store.recommend(task_type)
        if rec is not None and rec.successes and (spec := self.store.latest(rec.agent)) is not None:
            return spec, (
                f"recommended for {task_type}: success {rec.success_rate:.0%} over {rec.runs} run(s)"
            )
        for spec in self.store.list():
            if task_type in spec.task_types:
                return spec, f"registered for task type {task_type}"
        return fallback, "no registered agent for this task type"

    def base_agent(self, task_type: str) -> tuple[AgentSpec, str]:
        assert self.request is not None
        if self.request.agent:
            return self.store.get(self.request.agent), "chosen with --agent"
        return self.pick_agent(task_type, default_agent())

    def run_agent(
        self,
        spec: AgentSpec,
        task: str,
        *,
        task_type: str,
        task_id: str,
        context: str | None = None,
        label: str | None = None,
    ) -> AgentResult:
        """Run one agent execution, and record its performance."""
        assert self.tracer is not None and self.request is not None
        req = self.request
        budget = spec.budget(
            max_steps=req.max_steps, max_tokens=req.max_tokens, max_seconds=req.max_seconds
        )
        loop = AgentLoop(
            spec,
            llm=self.llm_for(spec),
            toolbox=Toolbox(self.forge, spec, model=self.model),
            tracer=self.tracer,
            budget=budget,
            label=label,
        )
        self.progress(f"agent {label or spec.name}: {task[:60]}")
        try:
            result = loop.run(task, context=context)
        except (EnvironmentUnavailable, Interrupted, KeyboardInterrupt):
            raise
        except ToolforgeError as e:
            result = AgentResult(spec.name, spec.version, task, "", "failed", stop_reason=str(e))
            self.tracer.event("agent_end", label or spec.name, status="failed", error=str(e))
        registered = self.store.latest(spec.name)
        self.store.record_performance(
            agent=spec.name,
            agent_version=spec.version if registered else None,
            task_type=task_type,
            success=result.success,
            cost_usd=result.usage.cost_usd,
            latency_s=result.latency_s,
            tokens=result.usage.total_tokens,
            task_id=task_id,
        )
        return result

    def generate_agent(self, task: str, *, name: str | None = None) -> AgentSpec:
        """Ask the model for an AgentSpec specialised for ``task`` and register it."""
        if not (task or "").strip():
            raise UsageError(
                "The task is empty", hint='Describe the kind of task: toolforge agents generate "…"'
            )
        known = {r.name for r in self.forge.registry.list()} | set(META_TOOLS)
        tools = "\n".join(f"- {r.name}: {r.spec.description}" for r in self.forge.registry.list())
        tools += "\n" + "\n".join(f"- {n}: {m['description']}" for n, m in META_TOOLS.items())
        draft = self.ask(
            "generate_agent",
            prompts.GENERATE_AGENT.format(tools=tools),
            task.strip(),
            prompts.AgentDraft,
        )
        allowed: list[str] | Literal["*"] = ALL_TOOLS
        if draft.tools != ALL_TOOLS:
            allowed = [t for t in draft.tools if t in known] or ALL_TOOLS
        spec = AgentSpec(
            name=agent_name(name or draft.name),
            description=draft.description,
            role=draft.role,
            tools=allowed,
            temperature=draft.temperature,
            max_steps=draft.max_steps,
            task_types=draft.task_types,
            model=self.model,
        )
        return self.store.add(spec)

    # -- solve ---------------------------------------------------------------------------
    def solve(self, request: SolveRequest) -> SolveResult:
        from toolforge.agents import topologies

        self.request = request.checked()
        if request.agent:
            self.store.get(request.agent)  # unknown agent: fail before any model call
        run_id = new_run_id()
        self.store.start_run(run_id, task=request.task, topology=request.topology, model=self.model)
        self.tracer = Tracer(self.store, run_id)
        self.tracer.event(
            "run_start",
            task=request.task,
            topology=request.topology,
            subtasks=request.subtasks,
            strategies=request.strategies,
            merge=request.merge,
        )
        started = time.monotonic()
        result = SolveResult(run_id, request.task, "", request.topology, "", "", "failed")
        try:
            self.progress("classifying the task")
            result.task_type = self.classify(request.task)
            self.store.update_run(run_id, task_type=result.task_type)
            topology, reason = topologies.choose(self, request)
            result.topology, result.reason = topology, reason
            self.store.update_run(run_id, topology=topology, reason=reason)
            topologies.RUNNERS[topology](self, result)
        except BaseException as e:
            result.status, result.stop_reason = "failed", str(e) or type(e).__name__
            raise
        finally:
            result.usage = self.tracer.usage
            result.latency_s = time.monotonic() - started
            self._finish(result)
        return result

    def _finish(self, result: SolveResult) -> None:
        assert self.tracer is not None
        u = result.usage
        self.tracer.event(
            "run_end",
            status=result.status,
            answer=result.answer,
            stop_reason=result.stop_reason,
            prompt_tokens=u.prompt_tokens,
            completion_tokens=u.completion_tokens,
            cost_usd=u.cost_usd,
            latency_s=round(result.latency_s, 3),
        )
        self.store.update_run(
            result.run_id,
            status=result.status,
            answer=result.answer,
            stop_reason=result.stop_reason,
            finished_at=now_iso(),
            prompt_tokens=u.prompt_tokens,
            completion_tokens=u.completion_tokens,
            cost_usd=u.cost_usd,
            latency_s=result.latency_s,
            meta={"agents": [a.to_json() for a in result.agents], "merge": result.merge},
        )
