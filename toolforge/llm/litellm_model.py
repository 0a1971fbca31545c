"""``LiteLLM``: the real model, any litellm model string. The only module importing litellm.

Why litellm: one call shape for hosted APIs, Ollama, vLLM and the embedded llama.cpp
server. This wrapper adds what toolforge needs around it:

- transient failures (rate limit, timeout, 5xx, connection refused) are retried with
  tenacity: exponential backoff with full jitter, bounded in attempts;
- a wrong key or an unknown model fails at once as :class:`ModelUnavailable` (exit 3)
  saying how to fix it; anything else the provider rejects is an :class:`LLMError`;
- ``response_format`` is passed as JSON schema where litellm says the model supports it,
  downgraded to ``json_object`` where only that is supported, dropped otherwise;
- tokens and cost per call come from litellm's own accounting (0 for local models).

litellm is imported on first use, never at module import, so ``toolforge --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from collections.abc import Callable
from typing import Any

from toolforge.errors import LLMError, ModelUnavailable
from toolforge.llm.base import LLM, Completion, Message, ToolCall, Usage

CompletionFn = Callable[..., Any]

# litellm otherwise spends seconds on its first call fetching a cost map from the network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

TRANSIENT_NAMES = (
    "RateLimitError",
    "Timeout",
    "APIConnectionError",
    "InternalServerError",
    "ServiceUnavailableError",
    "BadGatewayError",
)
FATAL_NAMES = ("AuthenticationError", "PermissionDeniedError", "NotFoundError")
_UNKNOWN_MODEL = re.compile(
    r"model\b.{0,80}(not found|does not exist|not exist|unknown)", re.I | re.S
)


def _litellm() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # litellm's own import-time noise is not the user's concern
        import litellm

    litellm.suppress_debug_info = True
    return litellm


def _quiet(fn: Callable[..., Any], **kwargs: Any) -> Any:
    """Call into litellm with its internal warnings (pydantic schema notes) silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(**kwargs)


class TransientLLMError(Exception):
    """Internal marker: a failure worth retrying. Never escapes :class:`LiteLLM`."""


class LiteLLM(LLM):
    """A chat model reached through litellm.

    ``completion`` replaces ``litellm.completion`` (tests inject a function that raises
    litellm's exception classes, so no network is touched). ``json_schema`` forces (True)
    or forbids (False) schema-constrained output; ``None`` asks litellm whether the model
    supports it. ``local`` marks a self-hosted model: cost is 0 and JSON schema is used.
    """

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        completion: CompletionFn | None = None,
        json_schema: bool | None = None,
        local: bool = False,
        retries: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 20.0,
        timeout_s: float = 300.0,
    ) -> None:
        if not model:
            raise ModelUnavailable(
                "No model configured",
                hint="Set TOOLFORGE_MODEL or pass --model (any litellm model string).",
            )
        self.model = model
        self.api_base = api_base
        self.api_key = api_key
        self.local = local
        # small self-hosted models answer tool calls poorly: agents use the JSON action format
        self.supports_tools = not local
        self.retries = max(1, retries)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self._completion = completion
        self._json_schema = True if (json_schema is None and local) else json_schema
        self.calls: list[Usage] = []  # per-call accounting, newest last

    # -- public --------------------------------------------------------------------------
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
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "timeout": self.timeout_s,
        }
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self.api_key:
            kwargs["api_key"] = self.api_key
        for key, value in (
            ("temperature", temperature),
            ("seed", seed),
            ("max_tokens", max_tokens),
            ("tools", tools),
        ):
            if value is not None:
                kwargs[key] = value
        if (
            response_format is not None
            and (fmt := self._response_format(response_format)) is not None
        ):
            kwargs["response_format"] = fmt
        started = time.monotonic()
        response = self._call_with_retries(kwargs)
        completion = self._to_completion(response)
        completion.latency_s = time.monotonic() - started
        self.calls.append(completion.usage)
        return completion

    # -- transport -----------------------------------------------------------------------
    def embed(self, texts: list[str]) -> list[list[float]]:
        """Embeddings through ``litellm.embedding`` (same retries and error translation)."""
        response = self._call_with_retries(
            {
                "model": self.model,
                "input": texts,
                "timeout": self.timeout_s,
                **({"api_base": self.api_base} if self.api_base else {}),
                **({"api_key": self.api_key} if self.api_key else {}),
            },
            endpoint="embedding",
        )
        return [list(_get(item, "embedding")) for item in _get(response, "data")]

    def _call_with_retries(self, kwargs: dict[str, Any], *, endpoint: str = "completion") -> Any:
        from tenacity import (
            Retrying,
            retry_if_exception_type,
            stop_after_attempt,
            wait_random_exponential,
        )

        retrying = Retrying(
            stop=stop_after_attempt(self.retries),
            wait=wait_random_exponential(multiplier=self.backoff_s, max=self.max_backoff_s),
            retry=retry_if_exception_type(TransientLLMError),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._call_once(kwargs, endpoint)
        except TransientLLMError as e:
            cause = e.__cause__
            raise ModelUnavailable(
                f"The model {self.model} kept failing after {self.retries} tries: {_short(cause)}",
                hint=self._where_hint(),
            ) from cause
        raise AssertionError("unreachable")  # pragma: no cover - tenacity either returns or raises

    def _call_once(self, kwargs: dict[str, Any], endpoint: str = "completion") -> Any:
        if endpoint == "completion" and self._completion is not None:
            fn = self._completion
        else:
            fn = getattr(_litellm(), endpoint)
            if endpoint == "completion" and "tools" in kwargs:
                # plain function tools: skip litellm's MCP gateway probe (needs the mcp extra)
                kwargs = {**kwargs, "_skip_mcp_handler": True}
        try:
            return _quiet(fn, **kwargs)
        except Exception as e:  # translated by class name: litellm's tree, openai's, httpx's
            names = {cls.__name__ for cls in type(e).__mro__}
            if names & set(FATAL_NAMES):
                raise self._fatal(e) from e
            if names & set(TRANSIENT_NAMES) or isinstance(e, (ConnectionError, TimeoutError)):
                raise TransientLLMError(str(e)) from e
            if "ContextWindowExceededError" in names:
                raise LLMError(f"The prompt is too long for {self.model}: {_short(e)}") from e
            if names & {
                "BadRequestError",
                "UnsupportedParamsError",
                "APIError",
                "OpenAIError",
                "BadRequest",
            }:
                if "LLM Provider NOT provided" in str(e) or _UNKNOWN_MODEL.search(str(e)):
                    raise self._fatal(e) from e
                raise LLMError(f"The model {self.model} rejected the request: {_short(e)}") from e
            raise

    def _fatal(self, e: BaseException) -> ModelUnavailable:
        names = {cls.__name__ for cls in type(e).__mro__}
        if names & {"AuthenticationError", "PermissionDeniedError"}:
            return ModelUnavailable(
                f"The model provider refused the API key for {self.model}: {_short(e)}",
                hint="Set a valid key: TOOLFORGE_API_KEY, the provider's own variable "
                "(e.g. OPENAI_API_KEY, ANTHROPIC_API_KEY), or api_key in config.yaml.",
            )
        return ModelUnavailable(
            f"Unknown model {self.model!r}: {_short(e)}",
            hint="Check the model string (litellm form, e.g. openai/gpt-4o-mini, ollama/qwen2.5-coder) "
            "with --model / TOOLFORGE_MODEL, or unset it to use the embedded local model.",
        )

    def _where_hint(self) -> str:
        if self.api_base:
            return f"Check that the server at {self.api_base} is running (toolforge model status for the embedded one)."
        return "Check the network and the provider's status, then try again."

    # -- formats -------------------------------------------------------------------------
    def _response_format(self, wanted: dict[str, Any]) -> dict[str, Any] | None:
        """Pass the schema where supported; else ask for plain JSON; else nothing."""
        if wanted.get("type") != "json_schema":
            return wanted if self._supports_param("response_format") else None
        if self._json_schema is True:
            return wanted
        if self._json_schema is None:
            try:
                if _litellm().supports_response_schema(model=self.model, custom_llm_provider=None):
                    return wanted
            except Exception:  # noqa: BLE001 - an unmapped model: fall through to json_object
                pass
        return {"type": "json_object"} if self._supports_param("response_format") else None

    def _supports_param(self, name: str) -> bool:
        if self.local:
            return True
        try:
            params = _litellm().get_supported_openai_params(model=self.model) or []
        except Exception:  # noqa: BLE001 - unknown provider: don't send optional params
            return False
        return name in params

    def _to_completion(self, response: Any) -> Completion:
        choice = _get(response, "choices")[0]
        message = _get(choice, "message")
        calls: list[ToolCall] = []
        for raw in _get(message, "tool_calls") or []:
            fn = _get(raw, "function")
            arguments: dict[str, Any] | str = _get(fn, "arguments") or "{}"
            try:
                parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
                arguments = parsed if isinstance(parsed, dict) else arguments
            except json.JSONDecodeError:
                pass
            calls.append(
                ToolCall(
                    id=_get(raw, "id") or f"call_{len(calls)}",
                    name=_get(fn, "name"),
                    arguments=arguments,
                )
            )
        usage = _get(response, "usage")
        prompt = int(_get(usage, "prompt_tokens") or 0) if usage else 0
        completion_tokens = int(_get(usage, "completion_tokens") or 0) if usage else 0
        return Completion(
            text=_get(message, "content") or "",
            tool_calls=calls,
            usage=Usage(prompt, completion_tokens, self._cost(response)),
            model=_get(response, "model") or self.model,
        )

    def _cost(self, response: Any) -> float:
        if self.local or self._completion is not None and not hasattr(response, "_hidden_params"):
            return 0.0
        try:
            return float(_quiet(_litellm().completion_cost, completion_response=response) or 0.0)
        except Exception:  # noqa: BLE001 - unpriced model (self-hosted, new): cost unknown = 0
            return 0.0


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def _short(e: BaseException | None) -> str:
    text = str(e or "").strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


__all__ = ["LiteLLM"]
