"""Canned drafts (what a model would answer) for the synthesis tests, per language.

``good`` passes its own tests; ``buggy`` forgets the +32 so test 1 fails (expected 32, got 0);
``broken`` does not even parse.
"""

from __future__ import annotations

import json
from typing import Any

TESTS = [
    {"args": {"celsius": 0}, "expect": 32},
    {"args": {"celsius": 100}, "expect": 212},
    {"args": {"celsius": -40}, "expect": -40},
]

SOURCES = {
    "python": {
        "good": "def run(celsius: float) -> float:\n    return celsius * 9 / 5 + 32\n",
        "buggy": "def run(celsius: float) -> float:\n    return celsius * 9 / 5\n",
        "broken": "def run(celsius: float) -> float\n    return celsius * 9 / 5 + 32\n",
    },
    "typescript": {
        "good": "export function run(args: { celsius: number }): number {\n  return (args.celsius * 9) / 5 + 32;\n}\n",
        "buggy": "export function run(args: { celsius: number }): number {\n  return (args.celsius * 9) / 5;\n}\n",
        "broken": "export function run(args: { celsius: number }): number {\n  return (args.celsius * 9) / 5 + 32;\n",
    },
    "bash": {
        "good": "#!/usr/bin/env bash\nset -euo pipefail\necho $(( ARG_CELSIUS * 9 / 5 + 32 ))\n",
        "buggy": "#!/usr/bin/env bash\nset -euo pipefail\necho $(( ARG_CELSIUS * 9 / 5 ))\n",
        "broken": '#!/usr/bin/env bash\nset -euo pipefail\nif [ "$ARG_CELSIUS" ; then\necho 1\n',
    },
}

REQUIREMENT = "a tool that converts Celsius to Fahrenheit"


def draft(
    language: str,
    kind: str = "good",
    *,
    name: str = "c-to-f",
    tests: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    kind_of_number = "integer" if language == "bash" else "number"
    return {
        "name": name,
        "description": "Convert a temperature from Celsius to Fahrenheit.",
        "parameters": {
            "type": "object",
            "properties": {"celsius": {"type": kind_of_number}},
            "required": ["celsius"],
        },
        "code": SOURCES[language][kind],
        "tests": TESTS if tests is None else tests,
    }


def draft_json(language: str, kind: str = "good", **kw: Any) -> str:
    return json.dumps(draft(language, kind, **kw))
