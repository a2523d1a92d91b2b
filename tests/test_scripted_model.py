"""ScriptedChatModel: replays outputs from memory, a JSONL file or a trace, and records its calls."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from agent.models import make_chat_model
from agent.models.scripted import ScriptedChatModel, ScriptExhaustedError


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_in_memory_outputs_in_order_with_recorded_calls():
    model = ScriptedChatModel(outputs=['{"tool": "fhir_search"}', "The HbA1c is 7.1 %."])
    first = model.invoke([SystemMessage("You are a clinician."), HumanMessage("Latest HbA1c?")],
                         json_schema={"type": "object"})
    second = model.invoke("next", stop=["<end_of_turn>"])
    assert (first.content, second.content) == ('{"tool": "fhir_search"}', "The HbA1c is 7.1 %.")
    assert len(model.calls) == 2 and model.remaining == 0
    assert [m.type for m in model.calls[0].messages] == ["system", "human"]
    assert "Latest HbA1c?" in model.calls[0].text
    assert model.calls[0].json_schema == {"type": "object"}
    assert model.calls[1].json_schema is None and model.calls[1].stop == ["<end_of_turn>"]
    assert model.supports_json_schema is False


def test_usage_counts_whitespace_tokens_when_not_recorded():
    model = ScriptedChatModel(outputs=["one two three"])
    reply = model.invoke([HumanMessage("a b c d")])
    assert reply.usage_metadata == {"input_tokens": 4, "output_tokens": 3, "total_tokens": 7}
    assert reply.response_metadata["call"] == 1


def test_jsonl_file_with_token_counts(tmp_path):
    path = write_jsonl(tmp_path / "script.jsonl", [
        {"output": "first", "input_tokens": 12, "output_tokens": 7},
        {"output": "second"},
    ])
    (tmp_path / "script.jsonl").write_text(path.read_text() + "\n", encoding="utf-8")  # blank lines are fine
    model = make_chat_model(f"scripted:{path}")
    assert isinstance(model, ScriptedChatModel)
    reply = model.invoke("hi")
    assert reply.content == "first"
    assert reply.usage_metadata == {"input_tokens": 12, "output_tokens": 7, "total_tokens": 19}
    assert reply.response_metadata["source"] == f"{path}:1"
    assert model.invoke("again").content == "second"


def test_trace_file_replays_only_model_calls(tmp_path):
    path = write_jsonl(tmp_path / "trace.jsonl", [
        {"type": "run_start", "config": {"llm": "embedded"}},
        {"type": "model_call", "step": 1, "raw_output": '{"tool": "fhir_search", "args": {}}',
         "usage": {"input_tokens": 300, "output_tokens": 12}},
        {"type": "tool_call", "name": "fhir_search", "output": "ignored: not a model call"},
        {"type": "model_call", "step": 2, "raw_output": "Final answer.",
         "usage": {"prompt_tokens": 350, "completion_tokens": 3}},
        {"type": "run_end", "status": "completed"},
    ])
    model = ScriptedChatModel(path=str(path))
    first, second = model.invoke("q"), model.invoke("q")
    assert first.content.startswith('{"tool"') and first.usage_metadata["input_tokens"] == 300
    assert second.content == "Final answer." and second.usage_metadata["output_tokens"] == 3


def test_running_out_names_the_file_and_the_call(tmp_path):
    path = write_jsonl(tmp_path / "short.jsonl", [{"output": "only one"}])
    model = ScriptedChatModel(path=str(path))
    model.invoke("1")
    with pytest.raises(ScriptExhaustedError, match=rf"{path} has 1 output\(s\); call 2"):
        model.invoke("2")


def test_reset_replays_from_the_start():
    model = ScriptedChatModel(outputs=["a"])
    model.invoke("x")
    model.reset()
    assert model.invoke("x").content == "a" and len(model.calls) == 1


def test_bad_inputs_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ScriptedChatModel(path=str(tmp_path / "missing.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"output": "ok"}\nnot json\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.jsonl:2 is not JSON"):
        ScriptedChatModel(path=str(bad))
    nothing = write_jsonl(tmp_path / "nothing.jsonl", [{"foo": 1}])
    with pytest.raises(ValueError, match=r"nothing.jsonl:1: a line needs \"output\""):
        ScriptedChatModel(path=str(nothing))
    with pytest.raises(ValueError, match="exactly one of"):
        ScriptedChatModel()
