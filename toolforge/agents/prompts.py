"""The coordinator's prompts and the pydantic shapes of its structured model replies."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Reply(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TaskTypeReply(_Reply):
    task_type: str = Field(min_length=1, description="a short lowercase label, 1-3 words")


class TopologyChoice(_Reply):
    topology: Literal["single", "vertical", "horizontal"]
    reason: str = Field(min_length=1, description="one sentence: why this topology fits")


class PlanStep(_Reply):
    task: str = Field(min_length=1, description="what this step must produce")
    task_type: str = Field(
        default="general", description="short lowercase label of the step's kind"
    )
    agent_name: str = Field(default="step-agent", description="a short name for the specialist")
    role: str = Field(min_length=1, description="the specialist's system prompt")


class Plan(_Reply):
    subtasks: list[PlanStep] = Field(min_length=1, max_length=8)


class Strategies(_Reply):
    strategies: list[str] = Field(min_length=2, max_length=5)


class Score(_Reply):
    member: int = Field(ge=1)
    score: float = Field(ge=0, le=10)
    reason: str = ""


class Scores(_Reply):
    scores: list[Score] = Field(min_length=1)


class AgentDraft(_Reply):
    name: str
    description: str = Field(min_length=1)
    role: str = Field(min_length=1)
    tools: list[str] | Literal["*"] = "*"
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_steps: int = Field(default=8, ge=1, le=50)
    task_types: list[str] = Field(default_factory=list)


CLASSIFY = """Classify the task into a task type: a short lowercase label of 1 to 3 words joined by
hyphens (for example text-analysis, data-conversion, arithmetic, code-generation, research,
planning, writing). Reuse one of these known labels when it fits: {known}.
Reply with JSON: {{"task_type": "<label>"}}"""

CHOOSE_TOPOLOGY = """You organise a team of AI agents. Pick the topology for the task below, by this
rule of thumb:
- vertical: the task has 3 or more separable steps that build on each other (a pipeline);
- horizontal: the task is open-ended with several valid approaches worth trying in parallel
  and comparing;
- single: otherwise (one agent with tools can do it).
Reply with JSON: {"topology": "single" | "vertical" | "horizontal", "reason": "<one sentence>"}"""

DECOMPOSE = """Break the task into 2 to 6 ordered subtasks; each step gets the previous steps'
results. For each give the step's task, a short task_type label, a short agent_name and the
role (system prompt) of the specialist agent that should do it.
Reply with JSON: {"subtasks": [{"task": "...", "task_type": "...", "agent_name": "...", "role": "..."}]}"""

ASSIGN = """The task is already split into these ordered subtasks:
{steps}
For each, in the same order, give a short task_type label, a short agent_name and the role
(system prompt) of the specialist agent that should do it; repeat each task text unchanged.
Reply with JSON: {{"subtasks": [{{"task": "...", "task_type": "...", "agent_name": "...", "role": "..."}}]}}"""

INTEGRATE = """You integrate the results of ordered steps into the final answer to the overall
task. Use the step results; do not invent new facts. Reply with the final answer only."""

PROPOSE_STRATEGIES = """Several agents will attack the same task in parallel, each with a different
approach. Propose {n} distinct approaches, one short sentence each.
Reply with JSON: {{"strategies": ["...", "..."]}}"""

CONSENSUS = """Several agents answered the same task independently. Write the single answer they
agree on; where they differ, keep what most of them support and what is best justified.
Reply with the final answer only."""

JUDGE = """You are a strict judge. Score each candidate answer to the task from 0 (useless or
wrong) to 10 (correct and complete).
Reply with JSON: {"scores": [{"member": <candidate number>, "score": <0-10>, "reason": "..."}]}"""

GENERATE_AGENT = """Design a specialist AI agent for the task below. Give it a short lowercase
name (letters, digits, hyphens), a one-line description, a role (the system prompt that makes
it good at this kind of task: how to approach it, what to check), the tools it may call (a
list of names from the available tools, or "*" for all), a temperature, max_steps, and
task_types (1 to 3 short lowercase labels of the tasks it is for).
Available tools:
{tools}
Reply with JSON: {{"name": "...", "description": "...", "role": "...", "tools": ["..."] | "*",
"temperature": 0.2, "max_steps": 8, "task_types": ["..."]}}"""

STRATEGY_ROLE = "\n\nYour approach for this task: {strategy}"
