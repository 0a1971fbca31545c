"""The draft a model writes: spec fields + source + tests, as one flat JSON object.

The shape is deliberately small and flat (a 1.5B model fills it reliably under a JSON
schema constraint); :func:`to_bundle` turns it into a validated :class:`ToolBundle`.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from toolforge.errors import SpecError
from toolforge.spec import TestCase, ToolBundle, ToolSpec
from toolforge.spec.bundle import pydantic_problems
from toolforge.spec.models import NAME_MAX, Language


class DraftTest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    args: dict[str, Any]
    expect: Any


class ToolDraft(BaseModel):
    """What the model answers with. ``code`` is data: never rendered, never run on the host."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str
    parameters: dict[str, Any]
    code: str
    tests: list[DraftTest] = Field(min_length=3)


def normalize_name(raw: str, fallback: str = "tool") -> str:
    """Make any model- or user-given name a valid tool name (``Vowel Count!`` → ``vowel-count``)."""
    name = re.sub(r"[^a-z0-9_-]+", "-", raw.strip().lower()).strip("-_")
    name = re.sub(r"-{2,}", "-", name)
    if not name or not name[0].isalpha():
        name = f"{fallback}-{name}" if name else fallback
    return name[:NAME_MAX].rstrip("-_")


def to_bundle(
    draft: ToolDraft, *, language: Language | str, requirement: str, name: str | None = None
) -> ToolBundle:
    """Build the bundle; SpecError lists every spec problem (they go back to the model)."""
    lang = Language(language)
    source = draft.code if draft.code.endswith("\n") else draft.code + "\n"
    data = {
        "name": normalize_name(name or draft.name),
        "description": draft.description.strip() or requirement,
        "language": lang,
        "parameters": draft.parameters,
        "tests": [{"args": t.args, "expect": t.expect} for t in draft.tests],
        "requirement": requirement,
    }
    try:
        spec = ToolSpec.model_validate(data)
    except ValidationError as e:
        raise SpecError("draft", pydantic_problems(e)) from None
    return ToolBundle(spec=spec, source=source)


def from_bundle(bundle: ToolBundle) -> ToolDraft:
    """The draft form of a bundle (what the model is shown when asked to repair it)."""
    return ToolDraft(
        name=bundle.name,
        description=bundle.spec.description,
        parameters=bundle.spec.parameters,
        code=bundle.source,
        tests=[
            DraftTest(args=t.args, expect=t.expect) for t in bundle.spec.tests if t.kind == "expect"
        ]
        or [DraftTest(args={}, expect=None)] * 3,
    )


__all__ = ["DraftTest", "TestCase", "ToolDraft", "from_bundle", "normalize_name", "to_bundle"]
