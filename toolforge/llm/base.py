"""The model interface every part of toolforge talks to.

Messages are OpenAI-style dicts (``{"role": ..., "content": ...}``, plus ``tool_calls`` /
``tool_call_id`` for tool calling). A model answers with a :class:`Completion`.
The real implementation (``LiteLLM``) is the only code that imports litellm;
``toolforge.testing.ScriptedLLM`` is the shipped fake.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any] | str  # str when the model's arguments were not valid JSON


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cost_usd + other.cost_usd,
        )


@dataclass
class Completion:
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    latency_s: float = 0.0

    def as_message(self) -> Message:
        msg: Message = {"role": "assistant", "content": self.text or None}
        if self.tool_calls:
            import json

            msg["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {
                        "name": c.name,
                        "arguments": c.arguments
                        if isinstance(c.arguments, str)
                        else json.dumps(c.arguments),
                    },
                }
                for c in self.tool_calls
            ]
        return msg


class LLM(ABC):
    """A chat model. ``supports_tools`` says whether native tool calling may be used."""

    model: str = ""
    supports_tools: bool = True

    @abstractmethod
    def complete(
        self,
        messages: list[Message],
        *,
        temperature: float | None = None,
        response_format: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
        seed: int | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        """One chat completion. ``response_format`` follows OpenAI's (json_object / json_schema)."""

    def embed(self, texts: list[str]) -> list[list[float]]:
        """One embedding vector per text (graph memory's hybrid search). Chat-only models raise."""
        raise NotImplementedError(
            f"{type(self).__name__} ({self.model or 'no model'}) does not embed text"
        )
