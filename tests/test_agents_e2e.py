"""End to end on the embedded local model: ``toolforge solve`` with a registered example tool.

Needs the model (``make setup`` installs it) and Docker. Skipped where the model is missing;
in CI (``CI=true``) a missing model is a failure, never a silent skip.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import EXAMPLES
from toolforge import Forge

TASK = (
    "How many words are in the text 'the quick brown fox jumps over the lazy dog'? "
    "Use the word-count tool and answer with the number."
)


@pytest.fixture
def local_model() -> None:
    from toolforge.errors import ModelUnavailable
    from toolforge.llm.local import verified_model

    try:
        verified_model()
    except ModelUnavailable as e:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true but the embedded model is missing: {e.message}", pytrace=False)
        pytest.skip(f"embedded model missing: {e.message}")


@pytest.mark.model
@pytest.mark.docker
@pytest.mark.timeout(1800)
def test_solve_on_the_embedded_model_calls_a_registered_tool(local_model, cli) -> None:
    with Forge() as forge:
        forge.add(EXAMPLES / "word-count")
    r = cli("solve", TASK, "--topology", "single", "--max-steps", "4", "--json")
    assert r.code == 0, r
    result = json.loads(r.out)
    assert result["status"] == "ok" and result["topology"] == "single"
    with Forge() as forge:
        events = forge.agents.events(result["run_id"])
        forge.sandbox.close()
    calls = [e for e in events if e["kind"] == "tool_call"]
    results = [e for e in events if e["kind"] == "tool_result"]
    assert calls and calls[0]["tool"] in ("word_count", "word-count")
    assert results[0]["ok"] is True and json.loads(results[0]["content"])["result"]["words"] == 9
    assert "9" in result["answer"]
