"""The prompts, kept as package data in ``toolforge/synth/prompts/``.

A small model needs a complete worked example to copy the shape from (measured: plain
instructions scored 0/5, a one-shot example plus a JSON schema ~80%). Each language has
two examples; fresh candidates rotate through them for diversity. Prompt files are jinja2
templates rendered with StrictUndefined; the requirement, the model's code and the test
failures are only ever *values* passed in, never template source.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jinja2

from toolforge.llm.base import Message
from toolforge.spec.models import Language

EXAMPLE_VARIANTS = ("a", "b")
_env = jinja2.Environment(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
)


@cache
def prompt_file(name: str) -> str:
    return resources.files("toolforge.synth").joinpath("prompts", name).read_text(encoding="utf-8")


def render(name: str, **values: Any) -> str:
    return _env.from_string(prompt_file(name)).render(**values).strip()


@cache
def example(language: str, variant: str) -> dict[str, Any]:
    return json.loads(prompt_file(f"example_{language}_{variant}.json"))


def system_prompt(language: Language) -> str:
    rules = prompt_file(f"rules_{language.value}.md").strip()
    return render("system.md", main_file=language.main_file, language_rules=rules)


def draft_messages(requirement: str, language: Language, *, variant: str = "a") -> list[Message]:
    """System rules, one worked example exchange, then the requirement."""
    ex = example(language.value, variant)
    return [
        {"role": "system", "content": system_prompt(language)},
        {"role": "user", "content": _ask(ex["requirement"], language)},
        {"role": "assistant", "content": json.dumps(ex["draft"], ensure_ascii=False)},
        {"role": "user", "content": _ask(requirement, language)},
    ]


def repair_messages(
    requirement: str, language: Language, previous_json: str, failures: str, *, variant: str = "a"
) -> list[Message]:
    """The draft conversation, the failing answer, and the exact failures."""
    return [
        *draft_messages(requirement, language, variant=variant),
        {"role": "assistant", "content": previous_json},
        {
            "role": "user",
            "content": render("repair.md", failures=failures, requirement=requirement),
        },
    ]


def _ask(requirement: str, language: Language) -> str:
    return f"Write a {language.value} tool for this requirement: {requirement}"


__all__ = ["draft_messages", "example", "prompt_file", "render", "repair_messages", "system_prompt"]
