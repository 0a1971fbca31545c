"""Topologies: how agents are arranged for one task.

* **single** — one agent (the registered agent recommended for the task type, else the
  generalist) with the tools.
* **vertical** — ordered subtasks (the model decomposes the task, or ``--subtasks``), an
  agent per subtask (a registered one that fits its task type, else one the model
  specified in the plan), run in sequence with the previous results as context; a final
  model call integrates the results. A step that does not finish ends the chain.
* **horizontal** — N members (``--strategies`` or model-proposed) attack the task in
  parallel threads; the answers are merged by ``consensus`` (a model call writes the
  agreed answer), ``majority_vote`` (most frequent normalised answer, ties to the earliest
  member, no model call) or ``best_score`` (a judge call scores each, highest wins).
* **auto** — the model picks one by the rule of thumb and says why.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from toolforge.agents import prompts
from toolforge.agents.loop import AgentResult
from toolforge.agents.spec import AgentSpec, agent_name, slug_label

if TYPE_CHECKING:
    from toolforge.agents.coordinator import Coordinator, SolveRequest, SolveResult


def choose(coord: Coordinator, request: SolveRequest) -> tuple[str, str]:
    """The topology to run and why (the model's choice for ``auto``)."""
    if request.topology != "auto":
        return request.topology, "chosen by the user"
    if request.subtasks is not None:
        return "vertical", "subtasks were given"
    if request.strategies is not None:
        return "horizontal", "strategies were given"
    coord.progress("choosing a topology")
    choice = coord.ask(
        "choose_topology", prompts.CHOOSE_TOPOLOGY, request.task, prompts.TopologyChoice
    )
    assert coord.tracer is not None
    coord.tracer.event("plan", topology=choice.topology, reason=choice.reason)
    return choice.topology, choice.reason.strip()


# -- single ------------------------------------------------------------------------------
def run_single(coord: Coordinator, result: SolveResult) -> None:
    spec, why = coord.base_agent(result.task_type)
    assert coord.tracer is not None
    coord.tracer.event("plan", topology="single", agent=spec.name, why=why)
    agent = coord.run_agent(spec, result.task, task_type=result.task_type, task_id=result.run_id)
    result.agents.append(agent)
    _settle(result, agent.answer, [agent])


# -- vertical ----------------------------------------------------------------------------
def plan_steps(coord: Coordinator, task: str, given: list[str] | None) -> list[prompts.PlanStep]:
    """The ordered steps: decomposed by the model, or the given ones with roles assigned."""
    if given is None:
        plan = coord.ask("decompose", prompts.DECOMPOSE, task, prompts.Plan)
        return plan.subtasks
    listing = "\n".join(f"{i}. {s}" for i, s in enumerate(given, 1))
    plan = coord.ask(
        "assign_agents", prompts.ASSIGN.format(steps=listing), f"Overall task: {task}", prompts.Plan
    )
    steps = list(plan.subtasks)[: len(given)]
    while len(steps) < len(given):  # the model listed fewer: the rest get a generic specialist
        steps.append(prompts.PlanStep(task=given[len(steps)], role="You are a careful specialist."))
    return [s.model_copy(update={"task": text}) for s, text in zip(steps, given, strict=True)]


def step_agent(coord: Coordinator, step: prompts.PlanStep, index: int) -> tuple[AgentSpec, str]:
    """A registered agent for the step's task type, else the specialist from the plan."""
    generated = AgentSpec(
        name=agent_name(step.agent_name),
        description=step.task[:200],
        role=step.role,
        task_types=[step.task_type],
    )
    if coord.request is not None and coord.request.agent:
        return coord.base_agent(slug_label(step.task_type))
    return coord.pick_agent(slug_label(step.task_type) or "general", generated)


def previous_results(task: str, done: list[tuple[str, AgentResult]]) -> str:
    lines = [f"Overall task: {task}"]
    if done:
        lines.append("Results of the previous steps:")
        lines += [f"{i}. {sub}\n   Result: {r.answer}" for i, (sub, r) in enumerate(done, 1)]
    return "\n".join(lines)


def run_vertical(coord: Coordinator, result: SolveResult) -> None:
    assert coord.tracer is not None and coord.request is not None
    coord.progress("planning the steps")
    steps = plan_steps(coord, result.task, coord.request.subtasks)
    done: list[tuple[str, AgentResult]] = []
    picks = [step_agent(coord, step, i) for i, step in enumerate(steps, 1)]
    coord.tracer.event(
        "plan",
        topology="vertical",
        subtasks=[
            {"task": s.task, "task_type": s.task_type, "agent": spec.name, "why": why}
            for s, (spec, why) in zip(steps, picks, strict=True)
        ],
    )
    for i, (step, (spec, _)) in enumerate(zip(steps, picks, strict=True), 1):
        agent = coord.run_agent(
            spec,
            step.task,
            task_type=slug_label(step.task_type) or "general",
            task_id=f"{result.run_id}/{i}",
            context=previous_results(result.task, done),
            label=f"{spec.name}#{i}",
        )
        result.agents.append(agent)
        done.append((step.task, agent))
        if not agent.success:
            _settle(result, agent.answer, result.agents)
            return
    coord.progress("integrating the results")
    answer = coord.write(
        "integrate",
        prompts.INTEGRATE,
        previous_results(result.task, done) + "\n\nWrite the final answer to the overall task.",
    )
    _settle(result, answer, result.agents)


# -- horizontal --------------------------------------------------------------------------
def run_horizontal(coord: Coordinator, result: SolveResult) -> None:
    assert coord.tracer is not None and coord.request is not None
    request = coord.request
    strategies = request.strategies
    if strategies is None:
        coord.progress("proposing strategies")
        strategies = coord.ask(
            "propose_strategies",
            prompts.PROPOSE_STRATEGIES.format(n=3),
            result.task,
            prompts.Strategies,
        ).strategies
    base, why = coord.base_agent(result.task_type)
    coord.tracer.event(
        "plan",
        topology="horizontal",
        agent=base.name,
        why=why,
        strategies=strategies,
        merge=request.merge,
    )
    members = [
        base.model_copy(update={"role": base.role + prompts.STRATEGY_ROLE.format(strategy=s)})
        for s in strategies
    ]

    def run(i: int) -> AgentResult:
        return coord.run_agent(
            members[i],
            result.task,
            task_type=result.task_type,
            task_id=f"{result.run_id}/m{i + 1}",
            label=f"{base.name}#{i + 1}",
        )

    with ThreadPoolExecutor(max_workers=len(members), thread_name_prefix="agent") as pool:
        result.agents.extend(pool.map(run, range(len(members))))
    answered = [(i, a) for i, a in enumerate(result.agents, 1) if a.success]
    if not answered:
        _settle(result, "", result.agents)
        return
    coord.progress(f"merging {len(answered)} answers ({request.merge})")
    answer, detail = MERGERS[request.merge](coord, result.task, answered)
    result.merge = {"strategy": request.merge, **detail}
    coord.tracer.event("merge", strategy=request.merge, **detail)
    _settle(result, answer, [a for _, a in answered])


Answered = list[tuple[int, AgentResult]]


def normalise(answer: str) -> str:
    """The form answers are compared in for a vote: lowercase, single spaces, no end punctuation."""
    return re.sub(r"\s+", " ", answer.strip().lower()).rstrip(".!;:")


def merge_majority(coord: Coordinator, task: str, answered: Answered) -> tuple[str, dict[str, Any]]:
    votes = Counter(normalise(a.answer) for _, a in answered)
    best = max(votes.values())
    winner = next(
        i for i, a in answered if votes[normalise(a.answer)] == best
    )  # earliest among the top
    chosen = dict(answered)[winner]
    return chosen.answer, {"chosen": winner, "votes": {k: v for k, v in votes.most_common()}}


def merge_best_score(
    coord: Coordinator, task: str, answered: Answered
) -> tuple[str, dict[str, Any]]:
    if len(answered) == 1:
        return answered[0][1].answer, {"chosen": answered[0][0], "scores": {}}
    candidates = "\n\n".join(f"Candidate {i}:\n{a.answer}" for i, a in answered)
    reply = coord.ask("judge", prompts.JUDGE, f"Task: {task}\n\n{candidates}", prompts.Scores)
    scores = {s.member: s.score for s in reply.scores if s.member in dict(answered)}
    winner = max((i for i, _ in answered), key=lambda i: (scores.get(i, 0.0), -i))
    return dict(answered)[winner].answer, {
        "chosen": winner,
        "scores": {str(i): scores.get(i, 0.0) for i, _ in answered},
        "reasons": {str(s.member): s.reason for s in reply.scores},
    }


def merge_consensus(
    coord: Coordinator, task: str, answered: Answered
) -> tuple[str, dict[str, Any]]:
    if len(answered) == 1:
        return answered[0][1].answer, {"chosen": answered[0][0]}
    answers = "\n\n".join(f"Answer {i}:\n{a.answer}" for i, a in answered)
    text = coord.write("consensus", prompts.CONSENSUS, f"Task: {task}\n\n{answers}")
    return text, {"members": [i for i, _ in answered]}


MERGERS: dict[str, Callable[[Coordinator, str, Answered], tuple[str, dict[str, Any]]]] = {
    "consensus": merge_consensus,
    "majority_vote": merge_majority,
    "best_score": merge_best_score,
}


def _settle(result: SolveResult, answer: str, agents: list[AgentResult]) -> None:
    """The run's status from its agents: ok only when the counted agents all finished."""
    result.answer = answer
    failed = [a for a in agents if not a.success]
    if not failed and agents:
        result.status = "ok"
        return
    first = failed[0] if failed else None
    result.status = "failed" if first is None or first.status == "failed" else "stopped"
    result.stop_reason = f"{first.agent}: {first.stop_reason}" if first else "no agent answered"


RUNNERS: dict[str, Callable[[Coordinator, SolveResult], None]] = {
    "single": run_single,
    "vertical": run_vertical,
    "horizontal": run_horizontal,
}
