"""Local transformers weights (MedGemma 4B/27B, text or multimodal) as a LangChain chat model.

``HFChatModel(model_path="/models/medgemma-27b-text-it")`` loads the folder on first use (never
from a hub: ``local_files_only``) and keeps it per path for the process. bf16 with
``device_map="auto"`` when CUDA is available (needs ``accelerate``), float32 on CPU otherwise.

The prompt is the tokenizer's chat template when it has one, else ``gemma_format.to_gemma_prompt``;
either way the conversation is first shaped by ``normalize_turns`` (system text folded into the
first user turn, tool results as user turns, roles alternating), so it is the text every other
backend sends. Decoding is greedy and stops at ``<end_of_turn>`` (or EOS, or a ``stop`` string).
MedGemma's ``<unused94>thought ... <unused95>`` thinking is cut out of ``content`` into
``response_metadata["thinking"]``.

Multimodal folders (a ``vision_config`` in config.json, e.g. medgemma-4b-it, medgemma-27b-it) load
with ``AutoProcessor`` + ``AutoModelForImageTextToText``; image content blocks (base64 or data URLs)
go through the processor.

``invoke(..., json_schema={...})`` constrains decoding with llguidance, the mechanism (and the very
schema-to-grammar conversion, ``json_grammar.schema_grammar``) of the embedded backend: a logits
processor masks every token the schema does not allow, so the output parses and validates when it
ends on its own. Without llguidance installed ``supports_json_schema`` is False and the keyword is
ignored (the parser plus a repair turn take over).
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

from .gemma_format import END_OF_TURN, strip_thinking, to_gemma_prompt
from .openai_compat import normalize_turns


class HFModelError(RuntimeError):
    """The path holds no usable model, or the model cannot do what was asked."""


@dataclass
class _Loaded:
    model: Any
    tokenizer: Any
    processor: Any | None      # multimodal models only
    multimodal: bool
    load_s: float
    lltokenizer: Any = None    # llguidance's view of the vocabulary, built on the first json_schema


_CACHE: dict[tuple[str, str, str], _Loaded] = {}
_CACHE_LOCK = threading.Lock()


def clear_cache() -> None:
    """Forget every loaded model (frees its memory once nothing else holds it)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _config(path: Path) -> dict[str, Any]:
    hint = "give the folder of a transformers model, e.g. google/medgemma-27b-text-it downloaded beforehand"
    if not path.exists():
        raise HFModelError(f"hf: {path} does not exist; {hint}")
    if not (path / "config.json").is_file():
        raise HFModelError(f"hf: {path} has no config.json; {hint}")
    try:
        return json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HFModelError(f"hf: {path}/config.json is not readable JSON: {exc}") from exc


def _is_multimodal(config: dict[str, Any]) -> bool:
    return "vision_config" in config or any(a.endswith("ForConditionalGeneration") and "Gemma3" in a
                                            for a in config.get("architectures") or [])


def _device_and_dtype(device: str | None) -> tuple[str, Any]:
    import torch

    if device is None:
        device = "auto" if torch.cuda.is_available() else "cpu"
    return device, (torch.float32 if device == "cpu" else torch.bfloat16)


def _load(path: Path, device: str | None) -> _Loaded:
    config = _config(path)
    device, dtype = _device_and_dtype(device)
    key = (str(path.resolve()), device, str(dtype))
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        import transformers

        started = time.monotonic()
        placement = {"device_map": device} if device != "cpu" else {}
        multimodal = _is_multimodal(config)
        try:
            if multimodal:
                processor = transformers.AutoProcessor.from_pretrained(path, local_files_only=True)
                tokenizer = processor.tokenizer
                model = transformers.AutoModelForImageTextToText.from_pretrained(
                    path, dtype=dtype, local_files_only=True, **placement)
            else:
                processor = None
                tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
                model = transformers.AutoModelForCausalLM.from_pretrained(
                    path, dtype=dtype, local_files_only=True, **placement)
        except ImportError as exc:   # device_map needs accelerate; multimodal processors need pillow
            raise HFModelError(f"hf: loading {path} on '{device}' needs a package that is missing: {exc}") from exc
        except (OSError, ValueError) as exc:
            raise HFModelError(f"hf: could not load the model in {path}: {exc}") from exc
        model.eval()
        loaded = _Loaded(model, tokenizer, processor, multimodal, time.monotonic() - started)
        _CACHE[key] = loaded
        return loaded


def _pil_image(block: dict[str, Any]) -> Any:
    from PIL import Image  # pillow: only for multimodal inputs

    if block.get("type") == "image_url":
        url = block.get("image_url", {}).get("url", "") if isinstance(block.get("image_url"), dict) \
            else str(block.get("image_url", ""))
    else:
        url = block.get("url") or ""
    data = block.get("base64") or block.get("data")
    if not data and url.startswith("data:") and "," in url:
        data = url.split(",", 1)[1]
    if not data:
        raise HFModelError("hf: images must be given as base64 (a content block with 'base64' or a data: URL); "
                           "this backend fetches nothing")
    return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")


def _stop_strings(tokenizer: Any, stop: list[str], prompt_len: int) -> Any:
    """A stopping criterion: the decoded tail of the new tokens holds a stop string.

    transformers' own ``stop_strings`` precomputes tables over the whole vocabulary, seconds for
    Gemma's 262k tokens on each new set of stop strings; decoding a short tail is not.
    """
    import torch
    import transformers

    tail = max(len(s) for s in stop) + 8   # tokens: every token is at least one character

    class StopStrings(transformers.StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            done = [any(s in tokenizer.decode(row[max(prompt_len, len(row) - tail):], skip_special_tokens=False)
                        for s in stop) for row in input_ids]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StopStrings()


def _lltokenizer(loaded: _Loaded, stop_ids: list[int]) -> Any:
    """llguidance's tokenizer for this model (about 5 s for Gemma's 262k vocabulary), built once."""
    with _CACHE_LOCK:
        if loaded.lltokenizer is None:
            import llguidance.hf

            n_vocab = loaded.model.get_output_embeddings().weight.shape[0]
            loaded.lltokenizer = llguidance.hf.from_tokenizer(loaded.tokenizer, n_vocab=n_vocab, eos_token=stop_ids)
        return loaded.lltokenizer


def _schema_mask(loaded: _Loaded, schema: dict[str, Any], stop_ids: list[int], prompt_len: int) -> Any:
    """A logits processor that allows only the tokens ``schema`` allows next (greedy, batch of one)."""
    import llguidance
    import llguidance.numpy as llg_np   # not llguidance.torch: its torch.jit code warns on import
    import numpy as np
    import torch
    import transformers

    from .json_grammar import schema_grammar   # the same schema -> grammar as the embedded backend

    matcher = llguidance.LLMatcher(_lltokenizer(loaded, stop_ids), schema_grammar(schema), log_level=0)
    if matcher.is_error():
        raise HFModelError(f"hf: json_schema cannot be used for constrained decoding: {matcher.get_error()}")

    class SchemaMask(transformers.LogitsProcessor):
        def __init__(self) -> None:
            self.consumed = prompt_len
            self.bitmask = None

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            new = input_ids[0, self.consumed:].tolist()
            if new:
                matcher.consume_tokens(new)
                self.consumed += len(new)
            n_vocab = scores.shape[-1]
            if self.bitmask is None:
                self.bitmask = llg_np.allocate_token_bitmask(1, n_vocab)
            llg_np.fill_next_token_bitmask(matcher, self.bitmask)
            allowed = np.unpackbits(self.bitmask[0].view(np.uint8), bitorder="little")[:n_vocab]
            blocked = torch.from_numpy(allowed == 0).to(scores.device)
            return scores.masked_fill(blocked, float("-inf"))

    return SchemaMask()


class HFChatModel(BaseChatModel):
    """Greedy generation with a local transformers model; ``content`` is the answer text."""

    model_path: str = Field(description="Folder of a transformers model (config.json, weights, tokenizer)")
    max_new_tokens: int = Field(1024, description="Most new tokens per call (MedGemma thinking needs 1300-2000)")
    device: str | None = Field(None, description="None: 'auto' (bf16, device_map) with CUDA, else 'cpu' (float32)")
    use_chat_template: bool = Field(True, description="Use the tokenizer's chat template when it has one")
    keep_thinking_in_content: bool = Field(False, description="Leave MedGemma's thinking markers in content")

    @property
    def needs_examples(self) -> bool:
        """A checkpoint without a chat template is a base model: show it worked examples."""
        return self._chat_template(self.load()) is None

    def _chat_template(self, loaded: _Loaded) -> str | None:
        """The chat template text prompts are built with, or None (Gemma format instead)."""
        template = getattr(loaded.processor, "chat_template", None) or loaded.tokenizer.chat_template
        return template if self.use_chat_template and template else None

    @property
    def supports_json_schema(self) -> bool:
        return importlib.util.find_spec("llguidance") is not None

    @property
    def _llm_type(self) -> str:
        return "hf"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_path": self.model_path, "max_new_tokens": self.max_new_tokens}

    def load(self) -> _Loaded:
        """Load (or fetch from the per-path cache) the model, tokenizer and processor."""
        return _load(Path(self.model_path).expanduser(), self.device)

    # -- prompt

    @staticmethod
    def _conversation(turns: list[tuple[str, list[dict[str, Any]]]], images: bool) -> list[dict[str, Any]]:
        conversation = []
        for role, blocks in turns:
            if images:
                content: Any = [{"type": "image", "image": _pil_image(b)} if b.get("type") != "text"
                                else {"type": "text", "text": b["text"]} for b in blocks]
            else:
                content = "".join(b.get("text", "") for b in blocks)
            conversation.append({"role": role, "content": content})
        return conversation

    def _inputs(self, loaded: _Loaded, messages: list[BaseMessage]) -> tuple[dict[str, Any], str]:
        """Model inputs and the way the prompt was built ('chat_template' or 'gemma_format')."""
        turns = normalize_turns(messages)
        if any(b.get("type") != "text" for _, blocks in turns for b in blocks):
            if loaded.processor is None:
                raise HFModelError(f"hf: {self.model_path} is a text-only model; it cannot take images "
                                   "(use a multimodal one such as medgemma-4b-it)")
            inputs = loaded.processor.apply_chat_template(
                self._conversation(turns, images=True), add_generation_prompt=True, tokenize=True,
                return_dict=True, return_tensors="pt")
            return dict(inputs), "chat_template"
        tokenizer = loaded.tokenizer
        template = self._chat_template(loaded)
        if template:
            prompt = tokenizer.apply_chat_template(self._conversation(turns, images=False), chat_template=template,
                                                   add_generation_prompt=True, tokenize=False)
            how = "chat_template"
        else:
            prompt = to_gemma_prompt(messages)
            how = "gemma_format"
        # Templates write <bos> themselves; to_gemma_prompt leaves it to the tokenizer.
        bos = tokenizer.bos_token
        add_special = not (bos and prompt.startswith(bos))
        return dict(tokenizer(prompt, return_tensors="pt", add_special_tokens=add_special)), how

    def _stop_ids(self, loaded: _Loaded) -> list[int]:
        ids: set[int] = set()
        eos = getattr(loaded.model.generation_config, "eos_token_id", None)
        ids.update(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
        if loaded.tokenizer.eos_token_id is not None:
            ids.add(loaded.tokenizer.eos_token_id)
        eot = loaded.tokenizer.convert_tokens_to_ids(END_OF_TURN)
        if isinstance(eot, int) and eot != loaded.tokenizer.unk_token_id:
            ids.add(eot)
        return sorted(ids)

    # -- generation

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        import torch
        import transformers

        schema = kwargs.pop("json_schema", None)
        if schema is not None and not self.supports_json_schema:
            schema = None   # the contract: ignored where it cannot be honoured
        max_new = int(kwargs.pop("max_tokens", None) or kwargs.pop("max_new_tokens", None) or self.max_new_tokens)
        loaded = self.load()
        inputs, how = self._inputs(loaded, messages)
        device = loaded.model.device
        inputs = {k: (v.to(device, dtype=loaded.model.dtype) if torch.is_floating_point(v) else v.to(device))
                  if hasattr(v, "to") else v for k, v in inputs.items()}
        stop_ids = self._stop_ids(loaded)
        options: dict[str, Any] = {"max_new_tokens": max_new, "do_sample": False, "eos_token_id": stop_ids,
                                   "pad_token_id": loaded.tokenizer.pad_token_id
                                   if loaded.tokenizer.pad_token_id is not None else stop_ids[0]}
        prompt_len = inputs["input_ids"].shape[1]
        if stop:
            options["stopping_criteria"] = transformers.StoppingCriteriaList(
                [_stop_strings(loaded.tokenizer, list(stop), prompt_len)])
        if schema is not None:
            options["logits_processor"] = transformers.LogitsProcessorList(
                [_schema_mask(loaded, schema, stop_ids, prompt_len)])
        started = time.monotonic()
        with torch.inference_mode():
            output = loaded.model.generate(**inputs, **options)
        latency = time.monotonic() - started

        new_ids = output[0, prompt_len:].tolist()
        # Generation stops at the first stop token (<end_of_turn>, EOS): it counts, but is not text.
        cut = next((i for i, t in enumerate(new_ids) if t in stop_ids), None)
        generated = new_ids if cut is None else new_ids[:cut + 1]
        noise = {loaded.tokenizer.pad_token_id, loaded.tokenizer.bos_token_id}
        text_ids = [t for t in (generated if cut is None else generated[:-1]) if t not in noise]
        # skip_special_tokens=False: some tokenizers mark <unused94>/<unused95> special and would drop
        # the thinking markers; the turn markers are cut off by token id above instead.
        raw = loaded.tokenizer.decode(text_ids, skip_special_tokens=False)
        finish = "stop" if cut is not None else "length"
        for s in stop or []:
            if s in raw:
                raw, finish = raw[:raw.index(s)], "stop"
        answer, thinking = strip_thinking(raw)
        content = raw.strip() if self.keep_thinking_in_content else answer
        usage = {"input_tokens": int(prompt_len), "output_tokens": len(generated),
                 "total_tokens": int(prompt_len) + len(generated)}
        metadata = {"model": self.model_path, "model_name": Path(self.model_path).name, "latency_s": round(latency, 3),
                    "finish_reason": finish, "prompt_format": how,
                    "structured_output": "llguidance" if schema is not None else None,
                    "thinking": thinking, "device": str(device)}
        message = AIMessage(content=content, usage_metadata=usage, response_metadata=metadata)
        return ChatResult(generations=[ChatGeneration(message=message)])
