"""Run traces: every model call, tool call and result of a solve run, written as it happens.

Events go to the store at once (a crash leaves the trace up to the crash). Kinds:

* ``run_start`` {task, topology}      * ``plan`` {topology, reason, subtasks | strategies}
* ``agent_start`` {agent, task}       * ``agent_end`` {status, answer, stop_reason, steps …}
* ``model_call`` {purpose, input (messages new since the agent's previous call), output,
  tool_calls, prompt_tokens, completion_tokens, cost_usd, latency_ms}
* ``tool_call`` {tool, call_id, args}  * ``tool_result`` {tool, call_id, ok, content, latency_ms}
* ``stop`` {reason}                     * ``merge`` {strategy, chosen, detail}
* ``run_end`` {status, answer, prompt_tokens, completion_tokens, cost_usd, latency_s}
"""

from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING, Any

from toolforge.llm.base import Completion, Message, Usage

if TYPE_CHECKING:
    from toolforge.agents.store import AgentStore

MAX_TEXT = 20_000  # a trace keeps at most this many characters of one message / result


def new_run_id() -> str:
    return "run-" + uuid.uuid4().hex[:10]


def clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more characters]"


class Tracer:
    """Records the events of one run and sums its model usage; safe to share between threads."""

    def __init__(self, store: AgentStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.usage = Usage()
        self._seq = 0
        self._lock = threading.Lock()

    def event(self, kind: str, agent: str | None = None, **data: Any) -> None:
        with self._lock:
            self._seq += 1
            seq = self._seq
        self.store.add_event(self.run_id, seq, kind, agent, data)

    def model_call(
        self, agent: str | None, purpose: str, new_messages: list[Message], completion: Completion
    ) -> None:
        """Record one model call and add its usage to the run's total."""
        with self._lock:
            self.usage = self.usage + completion.usage
        self.event(
            "model_call",
            agent,
            purpose=purpose,
            input=[_clip_message(m) for m in new_messages],
            output=clip(completion.text or ""),
            tool_calls=[
                {"id": c.id, "name": c.name, "arguments": c.arguments}
                for c in completion.tool_calls
            ],
            model=completion.model,
            prompt_tokens=completion.usage.prompt_tokens,
            completion_tokens=completion.usage.completion_tokens,
            cost_usd=completion.usage.cost_usd,
            latency_ms=round(completion.latency_s * 1000, 3),
        )

    def structured_call(
        self,
        agent: str | None,
        purpose: str,
        messages: list[Message],
        structured: Any,
        latency_s: float,
    ) -> None:
        """Record a call made through ``ask_structured`` (value, attempts, usage, raw)."""
        usage: Usage = structured.usage
        with self._lock:
            self.usage = self.usage + usage
        value = structured.value
        self.event(
            "model_call",
            agent,
            purpose=purpose,
            input=[_clip_message(m) for m in messages],
            output=clip(str(structured.raw or "")),
            parsed=value.model_dump(mode="json") if hasattr(value, "model_dump") else value,
            attempts=structured.attempts,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost_usd=usage.cost_usd,
            latency_ms=round(latency_s * 1000, 3),
        )


def _clip_message(message: Message) -> Message:
    out = dict(message)
    if isinstance(out.get("content"), str):
        out["content"] = clip(out["content"])
    return out
