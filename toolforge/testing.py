"""Fakes that ship with toolforge so tests (yours and ours) never reach a network.

``ScriptedLLM`` answers from a queue of canned replies and records every request, so a
test can assert what the model was asked::

    llm = ScriptedLLM(['{"name": "add", ...}', RuntimeError("boom")])
    forge = Forge(llm=llm)
    ...
    assert "add two numbers" in llm.requests[0].messages[-1]["content"]

A reply is a string (the completion text), a :class:`Completion` (for tool calls and
usage), an exception instance (raised, e.g. to script a transient error), or a callable
taking the :class:`Request` and returning any of those.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from toolforge.llm.base import LLM, Completion, Message, ToolCall, Usage

Reply = str | Completion | BaseException | Callable[["Request"], Any]


@dataclass
class Request:
    messages: list[Message]
    temperature: float | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    seed: int | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        """All message contents joined, for ``in`` assertions."""
        return "\n".join(str(m.get("content") or "") for m in self.messages)


class ScriptExhausted(AssertionError):
    """The code under test asked the fake model more often than the script allows."""


class ScriptedLLM(LLM):
    def __init__(
        self, replies: Iterable[Reply] = (), *, model: str = "scripted", supports_tools: bool = True
    ) -> None:
        self.model = model
        self.supports_tools = supports_tools
        self._replies = list(replies)
        self._lock = threading.Lock()
        self.requests: list[Request] = []

    def add(self, *replies: Reply) -> ScriptedLLM:
        with self._lock:
            self._replies.extend(replies)
        return self

    @property
    def remaining(self) -> int:
        return len(self._replies)

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
        request = Request([dict(m) for m in messages], temperature, response_format, tools, seed)
        with self._lock:
            self.requests.append(request)
            if not self._replies:
                raise ScriptExhausted(
                    f"ScriptedLLM has no reply left for request #{len(self.requests)}:\n{request.prompt[-500:]}"
                )
            reply = self._replies.pop(0)
        if callable(reply) and not isinstance(reply, BaseException):
            reply = reply(request)
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, Completion):
            if not reply.model:
                reply.model = self.model
            return reply
        text = str(reply)
        return Completion(
            text=text, usage=Usage(len(request.prompt) // 4, len(text) // 4, 0.0), model=self.model
        )


def tool_call(
    name: str, arguments: dict[str, Any], *, id: str | None = None, text: str = ""
) -> Completion:
    """A scripted completion that calls one tool (native tool calling)."""
    return Completion(
        text=text, tool_calls=[ToolCall(id=id or f"call_{name}", name=name, arguments=arguments)]
    )


__all__ = ["Request", "ScriptExhausted", "ScriptedLLM", "tool_call"]
