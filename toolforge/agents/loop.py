"""The agent loop: model turn → tool calls in the sandbox → results back → … → answer.

Bounded by the agent's :class:`Budget`: at most ``max_steps`` model calls, ``max_tokens``
tokens (prompt + completion, summed over the calls) and ``max_seconds`` of wall time
(tool calls get at most the time that is left). Hitting a bound ends the agent with
status ``stopped`` and a recorded ``stop`` event (``toolforge solve`` then exits 4 with
BudgetExceeded, after printing the partial answer).

Models with native tool calling (``LLM.supports_tools``) get the tools as OpenAI-style
functions. Others (the embedded local model) use the **JSON action format**: every reply
is one JSON object, either

    {"action": "call", "tool": "<tool name>", "args": {...}}
    {"action": "final", "answer": "<the answer>"}

and tool results come back as a user message ``Result of <tool>: <JSON>``. The reply is
requested with a JSON schema (servers that enforce it, like llama.cpp's, cannot stray); a
reply that is not an action is shown its problem and counts as a step; a reply with no
JSON at all is taken as the final answer.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from toolforge.llm.base import LLM, Completion, Message, ToolCall, Usage

if TYPE_CHECKING:
    from toolforge.agents.spec import AgentSpec, Budget
    from toolforge.agents.toolbox import Toolbox
    from toolforge.agents.trace import Tracer

NATIVE_GUIDE = (
    "Call the tools when they help; each result comes back to you. When you have the final "
    "answer, reply with it as plain text and call no tool."
)

ACTION_GUIDE = """You can use these tools:
{tools}

Reply with exactly one JSON object and nothing else, in one of these two forms:
{{"action": "call", "tool": "<tool name>", "args": {{<arguments matching the tool's schema>}}}}
{{"action": "final", "answer": "<your final answer>"}}
Call a tool whenever it can compute or look up what you need; after each call you get its
result. Give the final answer once you have it."""

ACTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["call", "final"]},
        "tool": {"type": "string"},
        "args": {"type": "object"},
        "answer": {"type": "string"},
    },
    "required": ["action"],
}
ACTION_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "AgentAction", "schema": ACTION_SCHEMA, "strict": False},
}


@dataclass
class AgentResult:
    """How one agent execution ended."""

    agent: str
    agent_version: int | None
    task: str
    answer: str
    status: str  # ok | stopped
    stop_reason: str | None = None  # max_steps | max_tokens | max_seconds
    steps: int = 0
    tool_calls: int = 0
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0

    @property
    def success(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "agent_version": self.agent_version,
            "task": self.task,
            "answer": self.answer,
            "status": self.status,
            "stop_reason": self.stop_reason,
            "steps": self.steps,
            "tool_calls": self.tool_calls,
            "prompt_tokens": self.usage.prompt_tokens,
            "completion_tokens": self.usage.completion_tokens,
            "cost_usd": self.usage.cost_usd,
            "latency_s": round(self.latency_s, 3),
        }


STOP_TEXT = {
    "max_steps": "it used all its steps without a final answer",
    "max_tokens": "it used its whole token budget",
    "max_seconds": "it ran out of its wall-time budget",
}


class AgentLoop:
    """Runs one agent on one task; create one per execution (it keeps the conversation)."""

    def __init__(
        self,
        spec: AgentSpec,
        *,
        llm: LLM,
        toolbox: Toolbox,
        tracer: Tracer,
        budget: Budget,
        label: str | None = None,
    ) -> None:
        self.spec = spec
        self.llm = llm
        self.toolbox = toolbox
        self._task = ""
        self.tracer = tracer
        self.budget = budget
        self.label = label or spec.name
        # the embedded model (a LiteLLM with local=True) takes the JSON action format even
        # where its wrapper does not (yet) say supports_tools=False
        self.native = bool(getattr(llm, "supports_tools", True)) and not getattr(
            llm, "local", False
        )
        self.messages: list[Message] = []
        self._sent = 0

    def run(self, task: str, *, context: str | None = None) -> AgentResult:
        started = time.monotonic()
        self._task = task
        self.messages = [
            {"role": "system", "content": self._system_prompt()},
            {
                "role": "user",
                "content": f"{context.strip()}\n\nYour task: {task}" if context else task,
            },
        ]
        self.tracer.event(
            "agent_start",
            self.label,
            task=task,
            context=context,
            native_tools=self.native,
            tools=self.toolbox.names(),
            version=self.spec.version,
        )
        result = AgentResult(self.spec.name, self.spec.version, task, "", "stopped")
        last_text = ""
        while True:
            reason = self._exhausted(result, started)
            if reason:
                result.stop_reason = reason
                result.answer = last_text
                self.tracer.event(
                    "stop", self.label, reason=reason, detail=STOP_TEXT[reason], steps=result.steps
                )
                break
            completion = self._complete()
            result.steps += 1
            result.usage = result.usage + completion.usage
            calls, final = self._interpret(completion)
            last_text = completion.text or last_text
            if final is not None:
                result.answer, result.status = final, "ok"
                break
            for call in calls:
                result.tool_calls += 1
                self._run_tool(call, started)
        result.latency_s = time.monotonic() - started
        self.tracer.event(
            "agent_end",
            self.label,
            **{k: v for k, v in result.to_json().items() if k not in ("task", "agent")},
        )
        return result

    # -- one turn ------------------------------------------------------------------------
    def _system_prompt(self) -> str:
        if self.native:
            return f"{self.spec.role}\n\n{NATIVE_GUIDE}"
        return f"{self.spec.role}\n\n" + ACTION_GUIDE.format(tools=self.toolbox.describe())

    def _exhausted(self, result: AgentResult, started: float) -> str | None:
        b = self.budget
        if result.steps >= b.max_steps:
            return "max_steps"
        if b.max_tokens is not None and result.usage.total_tokens >= b.max_tokens:
            return "max_tokens"
        if b.max_seconds is not None and time.monotonic() - started >= b.max_seconds:
            return "max_seconds"
        return None

    def _complete(self) -> Completion:
        t0 = time.monotonic()
        if self.native:
            completion = self.llm.complete(
                self.messages,
                temperature=self.spec.temperature,
                tools=self.toolbox.definitions() or None,
            )
        else:
            # small local models follow the action format best when sampling greedily
            temperature = 0.0 if self.spec.temperature is None else self.spec.temperature
            completion = self.llm.complete(
                self.messages, temperature=temperature, response_format=ACTION_FORMAT
            )
        if not completion.latency_s:
            completion.latency_s = time.monotonic() - t0
        self.tracer.model_call(self.label, "agent_step", self.messages[self._sent :], completion)
        self._sent = len(self.messages)
        return completion

    def _interpret(self, completion: Completion) -> tuple[list[ToolCall], str | None]:
        """The tool calls to run, or the final answer (not None) when the agent is done."""
        if self.native:
            self.messages.append(completion.as_message())
            if completion.tool_calls:
                return completion.tool_calls, None
            return [], (completion.text or "").strip()
        text = completion.text or ""
        self.messages.append({"role": "assistant", "content": text})
        kind, payload = parse_action(text)
        if kind == "final":
            return [], payload
        if kind == "call":
            name, args = payload
            return [ToolCall(id=f"action_{len(self.messages)}", name=name, arguments=args)], None
        self.messages.append(
            {"role": "user", "content": f"{payload}\nReply with one JSON action object only."}
        )
        return [], None

    def _run_tool(self, call: ToolCall, started: float) -> None:
        self.tracer.event(
            "tool_call", self.label, tool=call.name, call_id=call.id, args=call.arguments
        )
        left = None
        if self.budget.max_seconds is not None:
            left = max(0.1, self.budget.max_seconds - (time.monotonic() - started))
        outcome = self.toolbox.call(call.name, call.arguments, timeout_s=left)
        self.tracer.event(
            "tool_result",
            self.label,
            tool=call.name,
            call_id=call.id,
            ok=outcome.ok,
            content=outcome.content,
            latency_ms=round(outcome.latency_s * 1000, 3),
        )
        if self.native:
            self.messages.append(
                {
                    "role": "tool",
                    "tool_call_id": call.id,
                    "name": call.name,
                    "content": outcome.content,
                }
            )
        else:
            self.messages.append(
                {
                    "role": "user",
                    "content": f"Result of {call.name}: {outcome.content}\n"
                    f"The task: {self._task}\n"
                    "If this result answers the task, reply "
                    '{"action": "final", "answer": "<the answer, stating the values from the result>"}; '
                    "otherwise reply with the next JSON action object.",
                }
            )


def parse_action(text: str) -> tuple[str, Any]:
    """Read a JSON-action reply: ("call", (tool, args)) | ("final", answer) | ("invalid", problem)."""
    from toolforge.llm.structured import extract_json

    try:
        data = extract_json(text)
    except ValueError as e:
        if "{" in text and any(k in text for k in ('"action"', '"tool"', '"answer"')):
            return "invalid", f"Your reply was not a valid action: {e}"
        return "final", text.strip()  # plain prose: the model answered
    if not isinstance(data, dict):
        return "invalid", 'Your reply must be one JSON object with an "action" field.'
    action = str(data.get("action") or "").lower()
    if action in ("call", "tool", "tool_call") or (not action and "tool" in data):
        tool = data.get("tool") or data.get("name")
        args = data.get("args", data.get("arguments", {}))
        if not isinstance(tool, str) or not tool:
            return "invalid", 'A "call" action needs "tool": the name of one of the tools.'
        return "call", (tool, args if isinstance(args, (dict, str)) else {})
    if action in ("final", "answer", "finish") or (not action and "answer" in data):
        answer = data.get("answer", "")
        return "final", answer if isinstance(answer, str) else json.dumps(
            answer, ensure_ascii=False
        )
    return "invalid", 'The "action" must be "call" or "final".'
