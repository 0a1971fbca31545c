"""The one door to language models. Only ``toolforge.llm.litellm_model`` imports litellm."""

from toolforge.llm.base import LLM, Completion, Message, ToolCall, Usage

__all__ = ["LLM", "Completion", "Message", "ToolCall", "Usage"]
