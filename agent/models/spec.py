"""One spec string selects a model backend everywhere (``--llm``, settings, traces).

    embedded                                    the default small model installed from PyPI
    embedded:KEY                                 one of them by name (agent/models/packaged.py):
                                                 qwen2.5-coder-1.5b, qwen2.5-coder-0.5b, gemma3-270m
    openai:MODEL@BASE_URL                        any OpenAI-compatible server (vLLM, llama.cpp)
    hf:/path/to/model                            local transformers weights (MedGemma 4B/27B)
    scripted:FILE                                replay recorded outputs (tests, trace replay)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["embedded", "openai", "hf", "scripted"]


class ModelSpecError(ValueError):
    pass


@dataclass(frozen=True)
class ModelSpec:
    kind: Kind
    model: str = ""      # openai: model name; hf: path; scripted: file; embedded: a packaged key or ""
    base_url: str = ""   # openai only

    def __str__(self) -> str:
        if self.kind == "embedded":
            return f"embedded:{self.model}" if self.model else "embedded"
        if self.kind == "openai":
            return f"openai:{self.model}@{self.base_url}"
        return f"{self.kind}:{self.model}"


def parse_spec(text: str) -> ModelSpec:
    text = (text or "").strip()
    if text in ("", "embedded"):
        return ModelSpec("embedded")
    kind, sep, rest = text.partition(":")
    if not sep or kind not in ("embedded", "openai", "hf", "scripted") or not rest:
        raise ModelSpecError(
            f"unknown model spec '{text}': use embedded, embedded:NAME, openai:MODEL@http://host:port/v1, "
            "hf:/path/to/model or scripted:FILE")
    if kind == "embedded":
        from .packaged import MODELS

        if rest not in MODELS:
            raise ModelSpecError(f"'{text}': no embedded model '{rest}'; choose one of {', '.join(MODELS)}")
        return ModelSpec("embedded", rest)
    if kind == "openai":
        model, at, url = rest.rpartition("@")
        if not at or not model or not url.startswith(("http://", "https://")):
            raise ModelSpecError(f"'{text}': an OpenAI-compatible spec is openai:MODEL@http://host:port/v1")
        return ModelSpec("openai", model, url.rstrip("/"))
    return ModelSpec(kind, rest)  # type: ignore[arg-type]
