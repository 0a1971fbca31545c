"""End to end with the REAL embedded model (Qwen2.5-Coder-1.5B via xllamacpp) and the real sandbox.

Skipped where the model is not installed (``toolforge model install`` / ``make setup``);
CI installs it, so there it runs. No network: the model server listens on 127.0.0.1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolforge.config import load_settings
from toolforge.forge import Forge
from toolforge.llm.local import local_model_status, running_server, stop_server


def _model_ready() -> tuple[bool, str]:
    status = local_model_status(load_settings())
    return status.ok, status.detail


pytestmark = [pytest.mark.model, pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _need_model() -> Iterator[None]:
    """Skip without the model; stop the server afterwards if this test started it."""
    ok, why = _model_ready()
    if not ok:
        pytest.skip(f"embedded model not installed: {why}")
    was_running = running_server() is not None
    yield
    if not was_running:
        stop_server()


def test_embedded_model_answers_structured_json() -> None:
    from pydantic import BaseModel

    from toolforge.llm.resolve import resolve_llm
    from toolforge.llm.structured import ask_structured

    class Sum(BaseModel):
        total: int

    llm = resolve_llm(load_settings())
    out = ask_structured(
        llm,
        [{"role": "user", "content": "What is 2 + 3? Answer as JSON with the key total."}],
        Sum,
        temperature=0,
    )
    assert out.value.total == 5
    assert out.usage.prompt_tokens > 0 and out.usage.cost_usd == 0.0


def test_generate_with_the_embedded_model_registers_a_working_tool() -> None:
    requirement = "convert Celsius to Fahrenheit. Parameter: celsius (number). Return the Fahrenheit value as a number."
    with Forge() as forge:
        result = forge.generate(requirement, language="python", attempts=3, candidates=2)
        assert result.passed and result.version == 1
        assert result.usage.total_tokens > 0 and result.usage.cost_usd == 0.0
        record = forge.tool(result.name)
        assert record.meta["model"].endswith("qwen2.5-coder-1.5b-instruct")
        assert abs(forge.run(result.name, celsius=100) - 212) < 1e-6  # a check the model never saw


def test_server_lifecycle_start_reuse_status_stop(
    cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A private model dir (weights symlinked) so this server is independent of any other."""
    from toolforge.llm import local

    shared = local.model_path()
    private = tmp_path / "models"
    private.mkdir()
    (private / local.MODEL_FILE).symlink_to(shared)
    (private / shared.with_suffix(".verified").name).write_text(local.MODEL_SHA256 + "\n")
    monkeypatch.setenv("TOOLFORGE_MODEL_DIR", str(private))
    try:
        r = cli("model", "start")
        assert r.code == 0 and r.out.startswith("✓ model server running at http://127.0.0.1:")
        first = local.running_server()
        assert first is not None and local.healthy(first.port)
        assert cli("model", "start").code == 0
        assert local.running_server().pid == first.pid  # reused, not a second server
        status = json.loads(cli("model", "status", "--json").out)
        assert status["server"]["pid"] == first.pid and status["ok"] is True
    finally:
        r = cli("model", "stop")
    assert r.out == "✓ model server stopped\n"
    assert local.running_server() is None and not local.healthy(first.port)
    assert cli("model", "stop").out == "✓ model server was not running\n"
