"""Build a backend from a spec and the settings: the one place that maps common settings
(timeout, token budget) onto each backend's own option names."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel

from . import make_chat_model
from .spec import ModelSpec


def build_chat_model(spec: ModelSpec, settings: Any) -> BaseChatModel:
    options: dict[str, Any] = {}
    if spec.kind == "openai":
        options = {"timeout": settings.llm_timeout, "max_tokens": settings.llm_max_new_tokens}
    elif spec.kind in ("embedded", "hf"):
        options = {"max_new_tokens": settings.llm_max_new_tokens}
    return make_chat_model(spec, **options)
