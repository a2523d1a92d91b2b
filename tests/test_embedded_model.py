"""The embedded backend: Gemma 3 270M (base) and Qwen2.5-Coder instruct models from PyPI on llama.cpp,
JSON-schema constrained decoding.

Tests that load the model are marked ``slow``; the model is loaded once for the module (about
1 s) with the network blocked, and every generation is kept short.
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Literal

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from agent.models import ModelSpecError, make_chat_model, parse_spec
from agent.models.embedded import MODEL_NAME, EmbeddedChatModel
from agent.models.packaged import DEFAULT_KEY
from agent.models.json_grammar import _drop_keys, bound_pattern, close_objects, generation_schema, schema_grammar

TOOL_SCHEMA = {
    "type": "object",
    "properties": {
        "tool": {"enum": ["search_records", "patient_summary"]},
        "args": {"type": "object", "properties": {"code": {"type": "string", "maxLength": 40}},
                 "required": ["code"]},
    },
    "required": ["tool", "args"],
}

SYSTEM = (
    "You plan the next step over one patient's health record. Answer with one JSON object: "
    '{"tool": NAME, "args": {"code": TEXT}}. Tools: search_records finds observations (labs, vital '
    "signs), conditions, medications, immunizations and allergies by a plain-text name; "
    "patient_summary lists what the record holds.")
SHOTS = [
    ("What was the latest HbA1c?", '{"tool":"search_records","args":{"code":"HbA1c"}}'),
    ("Give me an overview of this patient.", '{"tool":"patient_summary","args":{"code":"all"}}'),
    ("Is the patient on metformin?", '{"tool":"search_records","args":{"code":"metformin"}}'),
]
QUESTIONS = ["When was the last flu vaccine given?", "What is the most recent blood pressure?",
             "Does the patient have any allergies?"]


def few_shot(question: str) -> list:
    msgs: list = [SystemMessage(SYSTEM)]
    for q, a in SHOTS:
        msgs += [HumanMessage(q), AIMessage(a)]
    return msgs + [HumanMessage(question)]


def validate(value: object, schema: dict) -> None:
    try:
        import jsonschema
    except ImportError:
        jsonschema = None
    if jsonschema is not None:
        jsonschema.validate(value, schema)
        return
    # By hand, for TOOL_SCHEMA (and the closed form constrained decoding uses).
    assert isinstance(value, dict) and set(value) == {"tool", "args"}
    assert value["tool"] in ("search_records", "patient_summary")
    assert isinstance(value["args"], dict) and set(value["args"]) == {"code"}
    assert isinstance(value["args"]["code"], str) and len(value["args"]["code"]) <= 40


# -- no model needed -----------------------------------------------------------------------------

def test_close_objects_closes_only_open_objects():
    closed = close_objects(TOOL_SCHEMA)
    assert closed["additionalProperties"] is False
    assert closed["properties"]["args"]["additionalProperties"] is False
    assert "additionalProperties" not in TOOL_SCHEMA  # the input is not changed
    kept = close_objects({"type": "object", "additionalProperties": {"type": "object", "properties": {}}})
    assert kept["additionalProperties"] == {"type": "object", "properties": {}, "additionalProperties": False}
    nested = close_objects({"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}},
                            "$defs": {"x": {"properties": {"b": {}}}}})
    assert nested["items"]["additionalProperties"] is False
    assert nested["$defs"]["x"]["additionalProperties"] is False
    composed = close_objects({"allOf": [{"properties": {"a": {}}}, {"properties": {"b": {}}}]})
    assert all("additionalProperties" not in s for s in composed["allOf"])
    assert close_objects({"type": "string", "maxLength": 3}) == {"type": "string", "maxLength": 3}


FILTERS_SCHEMA = {
    "type": "object",
    "properties": {
        "resource_type": {"enum": ["Observation", "Condition"]},
        "filters": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 20},
                    "propertyNames": {"type": "string", "pattern": "^[a-z_]+$", "maxLength": 12},
                    "maxProperties": 2},
    },
    "required": ["resource_type", "filters"],
}


def test_property_names_become_pattern_properties():
    gen = generation_schema(FILTERS_SCHEMA)["properties"]["filters"]
    assert "propertyNames" not in gen and gen["additionalProperties"] is False
    assert gen["patternProperties"] == {"^[a-z_]{1,12}$": {"type": "string", "maxLength": 20}}
    assert gen["maxProperties"] == 2
    named = generation_schema({"type": "object", "properties": {"a": {"type": "integer"}},
                               "additionalProperties": {"type": "string"},
                               "propertyNames": {"enum": ["a", "b"]}})
    assert named["properties"] == {"a": {"type": "integer"}, "b": {"type": "string"}}
    assert named["additionalProperties"] is False
    assert "propertyNames" in FILTERS_SCHEMA["properties"]["filters"]  # the input is not changed


@pytest.mark.parametrize("pattern,lo,hi,expected", [
    (r"^[A-Za-z_][A-Za-z0-9_:.\-]*$", None, 40, r"^[A-Za-z_][A-Za-z0-9_:.\-]{0,39}$"),
    (r"^[a-z]+$", 3, 8, r"^[a-z]{3,8}$"),
    (r"\d{4}-\d{2}", None, 7, r"^\d{4}-\d{2}$"),
    (r"\d{4}-\d{2}", None, 6, None),           # cannot fit
    (r"a+b*c?", 2, 10, r"^a{2,5}b{0,4}c{0,1}$"),
    (r"(a|b)*", None, 5, None),                 # groups: not bounded
    (r".*", 2, 5, r"^.{2,5}$"),
])
def test_bound_pattern(pattern, lo, hi, expected):
    got = bound_pattern(pattern, lo, hi)
    assert got == expected
    if got:
        import re

        for length in range(0, 12):
            sample = "".join("a" for _ in range(length))
            if re.fullmatch(got[1:-1], sample):
                assert (lo or 0) <= length <= hi and re.search(pattern, sample)


def test_drop_keys_keeps_property_names():
    schema = {"type": "object", "properties": {"uniqueItems": {"type": "array", "uniqueItems": True}}}
    assert _drop_keys(schema, {"uniqueItems"}) == {"type": "object", "properties": {"uniqueItems": {"type": "array"}}}


def test_schema_grammar_accepts_dict_or_text_and_refuses_non_objects():
    assert schema_grammar(TOOL_SCHEMA) == schema_grammar(json.dumps(TOOL_SCHEMA))
    with pytest.raises(ValueError):
        schema_grammar("[1, 2]")


def test_json_schema_forms():
    from pydantic import BaseModel, Field

    from agent.models.embedded import _as_schema

    class Args(BaseModel):
        code: str = Field(max_length=40)

    class Call(BaseModel):
        tool: Literal["search_records", "patient_summary"]
        args: Args

    assert _as_schema(Call) == Call.model_json_schema()
    assert _as_schema(json.dumps(TOOL_SCHEMA)) == TOOL_SCHEMA
    assert _as_schema(None) is None
    with pytest.raises(ValueError):
        _as_schema([1, 2])
    schema_grammar(Call.model_json_schema())  # $defs/$ref compile


def test_factory_builds_embedded_without_loading():
    model = make_chat_model("embedded", max_new_tokens=12)
    assert isinstance(model, EmbeddedChatModel)
    assert model.supports_json_schema is True and EmbeddedChatModel.supports_json_schema is True
    assert model._llm_type == "medagent-embedded"
    assert model.temperature == 0.0 and model.stop == [] and model.max_new_tokens == 12
    assert model.model_key is None and model.packaged.key == DEFAULT_KEY


@pytest.mark.parametrize("spec,name,fmt,examples", [
    ("embedded:gemma3-270m", "gemma3-270m-q4_k_m", "gemma", True),
    ("embedded:qwen2.5-coder-1.5b", "qwen2.5-coder-1.5b-instruct-q4_k_m", "chatml", False),
    ("embedded:qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b-instruct-q5_0", "chatml", False),
])
def test_specs_select_a_packaged_model_and_its_chat_format(spec, name, fmt, examples):
    model = make_chat_model(spec)
    assert model.model_name == name and model.format == fmt and model.needs_examples is examples
    assert str(parse_spec(spec)) == spec and str(parse_spec("embedded")) == "embedded"
    with pytest.raises(ModelSpecError, match="choose one of gemma3-270m, qwen2.5-coder-1.5b, qwen2.5-coder-0.5b"):
        parse_spec("embedded:llama-70b")


def test_assemble_joins_parts_in_order_checks_the_hash_and_names_a_missing_part(tmp_path, monkeypatch):
    import hashlib
    import sys

    from agent.models import packaged

    chunks = [b"GGUF" + b"a" * 10, b"b" * 7, b"c" * 3]
    for n, data in enumerate(chunks, start=1):
        pkg = tmp_path / "site" / f"fakemodel_part{n}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part{n:02d}.bin").write_bytes(data)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    whole = b"".join(chunks)
    model = packaged.PackagedModel(key="fake", name="fake", chat_format="chatml", instruct=True,
                                   distribution="fakemodel-part{n}", version="1.0", parts=3, filename="fake.gguf",
                                   sha256=hashlib.sha256(whole).hexdigest(), size=len(whole))
    path = packaged.assemble(model, tmp_path / "cache")
    assert path.read_bytes() == whole
    assert packaged.assemble(model, tmp_path / "cache") == path           # the stamp: not joined again
    bad = packaged.PackagedModel(**{**model.__dict__, "sha256": "0" * 64, "filename": "bad.gguf"})
    with pytest.raises(packaged.PackagedModelError, match="expected 0000"):
        packaged.assemble(bad, tmp_path / "cache")
    assert not (tmp_path / "cache" / "bad.gguf").exists()
    four = packaged.PackagedModel(**{**model.__dict__, "parts": 4, "filename": "four.gguf"})
    sys.modules.pop("fakemodel_part4", None)
    with pytest.raises(packaged.PackagedModelError,
                       match=r"missing 1 of its 4 parts \(fakemodel-part4\): pip install fakemodel-part1==1.0 .*fakemodel-part4==1.0"):
        packaged.assemble(four, tmp_path / "cache")


def test_chatml_prompt_is_what_qwen_template_writes():
    from langchain_core.messages import AIMessage as AI

    from agent.models.chatml_format import to_chatml_prompt

    text = to_chatml_prompt([SystemMessage("Plan."), HumanMessage("Q <|im_end|>"), AI('{"tool": "x"}'), HumanMessage("R")])
    assert text == ("<|im_start|>system\nPlan.<|im_end|>\n<|im_start|>user\nQ < |im_end|><|im_end|>\n"
                    "<|im_start|>assistant\n{\"tool\": \"x\"}<|im_end|>\n<|im_start|>user\nR<|im_end|>\n"
                    "<|im_start|>assistant\n")
    assert to_chatml_prompt([HumanMessage("hi")]).startswith(
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>")


# -- the model -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model():
    """Loaded once, offline: HF_HUB_OFFLINE=1 and every outbound connection refused."""
    from agent.models import embedded

    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError(f"the embedded model tried to open a network connection: {args!r}")

    mp.setattr(socket.socket, "connect", refuse)
    mp.setattr(socket, "create_connection", refuse)
    try:
        embedded.unload_all()
        m = EmbeddedChatModel(model_key="gemma3-270m", max_new_tokens=48)
        runtime = m.load()
        assert runtime.path.is_file() and runtime.path.suffix == ".gguf"
    finally:
        mp.undo()
    return m


@pytest.mark.slow
def test_loads_offline_and_is_shared(model):
    runtime = model.load()
    assert EmbeddedChatModel(model_key="gemma3-270m", max_new_tokens=5).load() is runtime  # module-level cache
    assert runtime.sha256 and runtime.load_s < 30


@pytest.mark.slow
def test_greedy_output_is_deterministic(model):
    """The same prompt gives the same text whether it is evaluated from scratch or reuses the
    KV cache of a previous prompt (llama.cpp's kernels differ by batch size; see prefill)."""
    runtime = model.load()
    with runtime.lock:
        runtime._aligned = 0  # nothing reusable: the first call evaluates from scratch
    first = model.invoke(few_shot(QUESTIONS[0]), max_new_tokens=24).content
    model.invoke(few_shot(QUESTIONS[1]), max_new_tokens=24)  # another prompt in between (KV cache)
    again = model.invoke(few_shot(QUESTIONS[0]), max_new_tokens=24)
    assert again.response_metadata["cached_input_tokens"] > 0
    assert first == again.content and first.strip()


@pytest.mark.slow
@pytest.mark.parametrize("question", QUESTIONS)
def test_json_schema_output_parses_and_validates(model, question):
    msg = model.invoke(few_shot(question), json_schema=TOOL_SCHEMA)
    value = json.loads(msg.content)
    validate(value, TOOL_SCHEMA)
    meta = msg.response_metadata
    assert meta["constrained"] is True and meta["finish_reason"] == "stop"
    assert meta["model"] == MODEL_NAME and meta["latency_s"] > 0 and meta["tokens_per_s"] > 0


@pytest.mark.slow
def test_property_names_schema_validates(model):
    msg = model.invoke([HumanMessage("Search the patient's observations with two filters, as JSON.")],
                       json_schema=FILTERS_SCHEMA, max_new_tokens=96)
    assert msg.response_metadata["finish_reason"] == "stop"
    value = json.loads(msg.content)
    try:
        import jsonschema
    except ImportError:
        assert all(len(k) <= 12 for k in value["filters"]) and len(value["filters"]) <= 2
    else:
        jsonschema.validate(value, FILTERS_SCHEMA)


@pytest.mark.slow
def test_unimplemented_keywords_are_dropped_with_a_warning(model, caplog):
    schema = {"type": "object", "properties": {"codes": {"type": "array", "uniqueItems": True, "maxItems": 3,
                                                         "items": {"enum": ["HbA1c", "LDL", "BMI"]}}},
              "required": ["codes"]}
    with caplog.at_level("WARNING", logger="agent.models.embedded"):
        msg = model.invoke([HumanMessage("Which labs for diabetes follow-up? JSON.")], json_schema=schema,
                           max_new_tokens=40)
    assert "uniqueItems" in caplog.text
    value = json.loads(msg.content)
    assert set(value) == {"codes"} and len(value["codes"]) <= 3


@pytest.mark.slow
def test_usage_metadata_counts(model):
    msg = model.invoke(few_shot(QUESTIONS[2]), json_schema=TOOL_SCHEMA)
    usage = msg.usage_metadata
    assert usage["input_tokens"] > 50 and usage["output_tokens"] > 5
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert msg.response_metadata["constrained"] is True
    plain = model.invoke([HumanMessage("Hello")], max_new_tokens=4)
    assert plain.response_metadata["constrained"] is False
    assert 0 < plain.usage_metadata["output_tokens"] <= 4


@pytest.mark.slow
def test_stops_at_end_of_turn(model, monkeypatch):
    """Generation ends at <end_of_turn>, which stays out of the text.

    The PRETRAINED base model hardly ever emits <end_of_turn> by itself (after a complete
    few-shot answer it ranks about 14,000th, in transformers too), so the test makes it the
    top token at the third step.
    """
    rt = model.load()
    real = rt._logits
    steps = {"n": 0}

    def logits():
        values = real().copy()
        steps["n"] += 1
        if steps["n"] == 3:
            values[rt.special_ids["<end_of_turn>"]] = values.max() + 10.0
        return values

    monkeypatch.setattr(rt, "_logits", logits)
    msg = model.invoke(few_shot("What was the latest creatinine?"), max_new_tokens=48)
    assert msg.response_metadata["finish_reason"] == "stop"
    assert msg.usage_metadata["output_tokens"] == 3  # two text tokens and the end of the turn
    assert msg.content and "<end_of_turn>" not in msg.content and "<start_of_turn>" not in msg.content


@pytest.mark.slow
def test_constrained_output_ends_the_turn(model):
    """Under a schema the grammar allows only an end-of-turn token once the JSON is complete."""
    msg = model.invoke(few_shot("What was the latest creatinine?"), json_schema=TOOL_SCHEMA, max_new_tokens=60)
    assert msg.response_metadata["finish_reason"] == "stop"
    assert msg.content.endswith("}") and msg.usage_metadata["output_tokens"] < 60
    assert list(json.loads(msg.content)) == ["tool", "args"]  # the schema's key order


@pytest.mark.slow
def test_stop_strings_and_token_budget(model):
    cut = model.invoke(few_shot(QUESTIONS[0]), stop=['"args"'])
    assert '"args"' not in cut.content and cut.response_metadata["finish_reason"] == "stop"
    short = model.invoke(few_shot(QUESTIONS[0]), max_new_tokens=3)
    assert short.response_metadata["finish_reason"] == "length"
    assert short.usage_metadata["output_tokens"] == 3


@pytest.mark.slow
def test_one_generation_at_a_time(model):
    expected = [model.invoke(few_shot(q), json_schema=TOOL_SCHEMA).content for q in QUESTIONS[:2]]
    got: dict[int, str] = {}

    def run(i: int) -> None:
        got[i] = EmbeddedChatModel(model_key="gemma3-270m", max_new_tokens=48).invoke(few_shot(QUESTIONS[i]), json_schema=TOOL_SCHEMA).content

    threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [got[0], got[1]] == expected


@pytest.mark.slow
def test_prompt_longer_than_context_is_refused():
    small = EmbeddedChatModel(model_key="gemma3-270m", n_ctx=256, max_new_tokens=4)
    with pytest.raises(ValueError, match="context"):
        small.invoke([HumanMessage("word " * 400)])


@pytest.mark.slow
def test_the_default_instruct_model_plans_in_chatml():
    """The default (Qwen2.5-Coder-1.5B-Instruct): ChatML turns, no worked examples, a constrained
    planner turn that is one valid action and ends at <|im_end|>. Loads 1.1 GB (about 10 s)."""
    from agent.models.packaged import QWEN25_CODER_15B
    from agent.protocol.prompting import planner_messages
    from agent.protocol.schema import action_schema, schema_errors, tool_schemas
    from tools.ehr import EhrSession

    model = make_chat_model("embedded", max_new_tokens=160)  # it tends to fill optional arguments too
    assert model.packaged is QWEN25_CODER_15B and model.needs_examples is False
    rt = model.load()
    assert rt.chat_format == "chatml" and rt.bos_id is None
    schemas = tool_schemas(EhrSession(None).tools())
    schema = action_schema(schemas)
    msg = model.invoke(planner_messages("What was the patient's most recent HbA1c?", schemas, fewshot=False),
                       json_schema=schema)
    action = json.loads(msg.content)
    assert schema_errors(action, schema) == [] and msg.response_metadata["finish_reason"] == "stop"
    assert action.get("tool") == "search_records" and action["args"]["resource_type"] == "Observation"
    assert "<|im_end|>" not in msg.content and msg.response_metadata["model"] == QWEN25_CODER_15B.name
