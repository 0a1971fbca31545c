"""Pick the model: ``--model`` > ``TOOLFORGE_MODEL`` > config file > the embedded local model.

Settings already merge the environment and the config file, so the order here is just
"explicit argument, then settings.model, then local". The embedded model's server is
started on demand (and reused while it lives) — the first ``generate`` on a fresh machine
works with no key and no configuration.
"""

from __future__ import annotations

from toolforge.config import Settings
from toolforge.llm.base import LLM

LOCAL_MODEL_NAMES = ("local", "embedded")  # --model local forces the embedded model


def resolve_llm(settings: Settings, model: str | None = None, *, progress=None) -> LLM:  # noqa: ANN001
    """The LLM to use for ``settings`` (and an optional explicit model string)."""
    from toolforge.llm.litellm_model import LiteLLM

    chosen = model or settings.model
    if chosen and chosen not in LOCAL_MODEL_NAMES:
        return LiteLLM(chosen, api_base=settings.api_base, api_key=settings.api_key)
    return local_llm(settings, progress=progress)


def local_llm(settings: Settings, *, progress=None) -> LLM:  # noqa: ANN001
    """A LiteLLM pointed at the embedded llama.cpp server, started if needed."""
    from toolforge.llm.litellm_model import LiteLLM
    from toolforge.llm.local import MODEL_ALIAS, start_server

    info = start_server(settings, progress=progress)
    return LiteLLM(
        f"openai/{MODEL_ALIAS}", api_base=info.api_base, api_key="local-no-key", local=True
    )


__all__ = ["resolve_llm", "local_llm"]
