"""AgentSpec: what an agent is (role, tools, model) and what it may spend (budgets).

Specs are strict pydantic models, stored versioned in the agents store. A spec's budgets
are the defaults; ``solve --max-steps …`` overrides them per run through :class:`Budget`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from toolforge.errors import UsageError

AGENT_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
ALL_TOOLS: Final[Literal["*"]] = "*"


class AgentSpec(BaseModel):
    """An agent: a role prompt, the tools it may call, its model and its budgets."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="lowercase [a-z][a-z0-9_-]*, at most 64 characters")
    version: int = Field(default=1, ge=1)
    description: str = Field(min_length=1, description="one line: what this agent is good at")
    role: str = Field(min_length=1, description="the system prompt that makes it a specialist")
    tools: list[str] | Literal["*"] = Field(
        default=ALL_TOOLS,
        description='registered tool / meta-tool names it may call, or "*" for all',
    )
    model: str | None = Field(
        default=None, description="litellm model string; None = the run's model"
    )
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_steps: int = Field(
        default=8, ge=1, le=200, description="model turns before the run is stopped"
    )
    max_tokens: int | None = Field(
        default=None, ge=1, description="token budget (prompt + completion)"
    )
    max_seconds: float | None = Field(default=None, gt=0, description="wall-time budget")
    task_types: list[str] = Field(
        default_factory=list, description="task-type labels it is made for"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not AGENT_NAME_RE.match(value):
            raise ValueError(
                "must be lowercase letters, digits, '_' or '-', starting with a letter (≤ 64)"
            )
        return value

    @field_validator("task_types")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        return [slug_label(v) for v in value if slug_label(v)]

    def allows(self, tool: str) -> bool:
        return self.tools == ALL_TOOLS or tool in self.tools

    def budget(
        self,
        *,
        max_steps: int | None = None,
        max_tokens: int | None = None,
        max_seconds: float | None = None,
    ) -> Budget:
        """This agent's budget, with any of its bounds overridden for one run."""
        return Budget.checked(
            max_steps=self.max_steps if max_steps is None else max_steps,
            max_tokens=self.max_tokens if max_tokens is None else max_tokens,
            max_seconds=self.max_seconds if max_seconds is None else max_seconds,
        )


@dataclass(frozen=True)
class Budget:
    """Per-run bounds of one agent: steps (model turns), tokens, wall time (None = unbounded)."""

    max_steps: int = 8
    max_tokens: int | None = None
    max_seconds: float | None = None

    @classmethod
    def checked(
        cls, *, max_steps: int, max_tokens: int | None = None, max_seconds: float | None = None
    ) -> Budget:
        """Build a budget, refusing zero or negative values with a message that says which."""
        problems = []
        if max_steps is None or max_steps < 1:
            problems.append(f"--max-steps must be at least 1 (got {max_steps})")
        if max_tokens is not None and max_tokens < 1:
            problems.append(f"--max-tokens must be at least 1 (got {max_tokens})")
        if max_seconds is not None and max_seconds <= 0:
            problems.append(f"--max-seconds must be more than 0 (got {max_seconds:g})")
        if problems:
            raise UsageError(
                "Invalid budget: " + "; ".join(problems),
                hint="Omit an option to use the agent's default.",
            )
        return cls(int(max_steps), max_tokens, max_seconds)


def parse_agent_spec(data: Any, source: str = "agent spec") -> AgentSpec:
    """Validate ``data`` as an AgentSpec, turning pydantic's errors into one UsageError."""
    try:
        return AgentSpec.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or '<root>'}: {err['msg']}" for err in e.errors()
        )
        raise UsageError(f"Invalid {source}: {problems}") from None


def slug_label(text: str, *, max_len: int = 40) -> str:
    """A short, stable label: lowercase words joined by '-' (task types, agent names)."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    label = "-".join(words)[:max_len].strip("-")
    return label


def agent_name(text: str) -> str:
    """A valid agent name derived from free text (``"Data Cleaner!"`` → ``data-cleaner``)."""
    label = slug_label(text, max_len=60)
    if not label or not label[0].isalpha():
        label = "agent-" + label if label else "agent"
    return label


DEFAULT_ROLE = (
    "You are a capable, careful assistant. Solve the task you are given. When a registered "
    "tool can compute or look up part of the answer, call it instead of guessing; if no tool "
    "fits and the work needs one, create it with generate_tool. Answer concisely."
)


def default_agent(
    name: str = "generalist", *, tools: list[str] | Literal["*"] = ALL_TOOLS
) -> AgentSpec:
    """The agent used when no registered agent fits the task type."""
    return AgentSpec(
        name=name,
        description="A general problem solver that uses the registered tools.",
        role=DEFAULT_ROLE,
        tools=tools,
    )
