"""Structured output: ask the model for JSON matching a pydantic model, re-ask on bad output.

The schema is sent as OpenAI's ``response_format: json_schema`` (servers that enforce it,
such as llama.cpp's, then cannot emit anything else; others treat it as a strong hint).
The reply is parsed leniently (code fences and chatter around the JSON are cut away),
validated with pydantic, and on failure the model is shown its own output and the exact
validation errors and asked again — bounded, then :class:`LLMError` carries the attempts
and the last raw output (the pattern of instructor's ``retry.py``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from toolforge.errors import LLMError
from toolforge.llm.base import LLM, Message, Usage

T = TypeVar("T", bound=BaseModel)

MAX_ECHO_CHARS = 4000  # how much of a bad reply is shown back to the model


@dataclass
class Structured(Generic[T]):
    """A validated reply: the value, how many asks it took, the summed usage, the raw text."""

    value: T
    attempts: int
    usage: Usage
    raw: str


def response_format_for(schema: type[BaseModel]) -> dict[str, Any]:
    """OpenAI-style ``response_format`` asking for JSON that matches ``schema``."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": schema.__name__,
            "schema": schema.model_json_schema(),
            "strict": False,
        },
    }


_FENCE = re.compile(r"```(?:json)?\s*\n(.*?)```", re.DOTALL)


def extract_json(text: str) -> Any:
    """Parse the JSON value in ``text``: the whole text, a fenced block, or the outermost {...}.

    Raises ``ValueError`` naming what was wrong, in words the model can act on.
    """
    candidates = [text.strip()]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    first_error: json.JSONDecodeError | None = None
    for candidate in candidates:
        if not candidate:
            continue
        try:
            return json.loads(candidate)
        except json.JSONDecodeError as e:
            first_error = first_error or e
    if first_error is None:
        raise ValueError("the reply was empty; answer with one JSON object")
    raise ValueError(
        f"the reply is not valid JSON ({first_error.msg} at line {first_error.lineno} "
        f"column {first_error.colno}); answer with one JSON object only, strings in double "
        "quotes with newlines written as \\n"
    )


def validation_feedback(error: ValidationError | ValueError) -> str:
    """The text shown to the model after a bad reply: every problem, one per line."""
    if isinstance(error, ValidationError):
        lines = []
        for err in error.errors():
            where = ".".join(str(p) for p in err["loc"]) or "<root>"
            lines.append(f"- {where}: {err['msg']}")
        return "The JSON did not match the required schema:\n" + "\n".join(lines)
    return f"Problem: {error}"


def ask_structured(
    llm: LLM,
    messages: list[Message],
    schema: type[T],
    *,
    attempts: int = 3,
    temperature: float | None = None,
    seed: int | None = None,
    max_tokens: int | None = None,
) -> Structured[T]:
    """Ask ``llm`` until its reply validates as ``schema``; at most ``attempts`` asks.

    Transient transport errors are the LLM implementation's business (it retries them);
    what reaches here is a reply, good or bad, or a non-transient error that propagates.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    conversation = list(messages)
    usage = Usage()
    raw = ""
    fmt = response_format_for(schema)
    for attempt in range(1, attempts + 1):
        completion = llm.complete(
            conversation,
            temperature=temperature,
            response_format=fmt,
            seed=seed,
            max_tokens=max_tokens,
        )
        usage = usage + completion.usage
        raw = completion.text or ""
        try:
            value = schema.model_validate(extract_json(raw))
            return Structured(value=value, attempts=attempt, usage=usage, raw=raw)
        except (ValidationError, ValueError) as e:
            feedback = validation_feedback(e)
        conversation = [
            *conversation,
            {"role": "assistant", "content": raw[:MAX_ECHO_CHARS]},
            {
                "role": "user",
                "content": feedback + "\nReply again with the corrected JSON object only.",
            },
        ]
    raise LLMError(
        f"The model {llm.model or ''} gave no valid {schema.__name__} in {attempts} attempt(s); "
        f"last problem: {feedback.splitlines()[-1] if feedback else 'unknown'}",
        attempts=attempts,
        last_output=raw,
    )


__all__ = [
    "Structured",
    "ask_structured",
    "extract_json",
    "response_format_for",
    "validation_feedback",
]
