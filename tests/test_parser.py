"""The protocol parser over a table of real-shaped model outputs, and argument validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.protocol.parser import format_call, parse_output, strip_thinking, validate_calls
from agent.protocol.schema import tool_schemas
from agent.protocol.types import ParsedOutput, ToolCall
from tools.ehr import EhrSession

TOOLS = ["find_patient", "patient_summary", "search_records", "read_record", "draft_order"]
HBA1C = {"resource_type": "Observation", "code": "HbA1c"}
COND = {"resource_type": "Condition"}
OBS_REF = {"reference": "Observation/ebf6f24a-f6ca-5cf6-b83b-da02bc692293"}
S = "search_records"
T = "<unused94>thought\n"
E = "<unused95>"

# (id, raw model output, kind, expected calls [(name, args)] | answer text | error fragment, shape)
CASES = [
    ("json", '{"tool": "search_records", "args": {"resource_type": "Observation", "code": "HbA1c"}}',
     "calls", [(S, HBA1C)], "json"),
    ("name_arguments", '{"name": "search_records", "arguments": {"resource_type": "Condition"}}',
     "calls", [(S, COND)], "json"),
    ("arguments_as_string", '{"name": "read_record", "arguments": "{\\"reference\\": \\"Observation/ebf6f24a-f6ca-5cf6-b83b-da02bc692293\\"}"}',
     "calls", [("read_record", OBS_REF)], "json"),
    ("function_wrapper", '{"type": "function", "function": {"name": "search_records", "arguments": {"resource_type": "Condition"}}}',
     "calls", [(S, COND)], "json"),
    ("tool_calls", '{"tool_calls": [{"function": {"name": "patient_summary", "arguments": "{}"}}, '
                   '{"name": "search_records", "arguments": {"resource_type": "Condition"}}]}',
     "calls", [("patient_summary", {}), (S, COND)], "json"),
    ("json_list", '[{"tool": "patient_summary", "args": {}}, {"tool": "search_records", "args": {"resource_type": "Condition"}}]',
     "calls", [("patient_summary", {}), (S, COND)], "json"),
    ("jsonl_two_objects", '{"tool": "patient_summary", "args": {}}\n{"tool": "search_records", "args": {"resource_type": "Condition"}}',
     "calls", [("patient_summary", {}), (S, COND)], "json"),
    ("flat_args", '{"tool": "search_records", "resource_type": "Condition"}', "calls", [(S, COND)], "json"),
    ("tool_name_key", '{"search_records": {"resource_type": "Condition"}}', "calls", [(S, COND)], "json"),
    ("react_action", '{"action": "search_records", "action_input": {"resource_type": "Condition"}}',
     "calls", [(S, COND)], "json"),
    ("react_final", '{"action": "Final Answer", "action_input": "No allergies are recorded."}',
     "answer", "No allergies are recorded.", "json"),
    ("answer", '{"answer": "The latest HbA1c is 7.1 % on 2025-06-11 (Observation/ebf6f24a)."}',
     "answer", "The latest HbA1c is 7.1 % on 2025-06-11 (Observation/ebf6f24a).", "json"),
    ("final_answer", '{"final_answer": "Penicillin allergy (AllergyIntolerance/de5fa8e2)."}',
     "answer", "Penicillin allergy (AllergyIntolerance/de5fa8e2).", "json"),
    ("answer_with_braces", '{"answer": "BP {systolic 128, diastolic 82} on 2025-06-11 (Observation/x1)."}',
     "answer", "BP {systolic 128, diastolic 82} on 2025-06-11 (Observation/x1).", "json"),
    ("answer_not_text", '{"answer": {"value": 7.1, "unit": "%"}}', "answer", '{"value": 7.1, "unit": "%"}', "json"),
    ("fenced_json", 'I will look up the HbA1c.\n```json\n{"tool": "search_records", "args": {"resource_type": "Observation", "code": "HbA1c"}}\n```',
     "calls", [(S, HBA1C)], "fenced_json"),
    ("fenced_plain", '```\n{"tool": "patient_summary", "args": {}}\n```', "calls", [("patient_summary", {})], "fenced_json"),
    ("fenced_two_calls", '```json\n{"tool": "patient_summary", "args": {}}\n{"tool": "search_records", "args": {"resource_type": "Condition"}}\n```',
     "calls", [("patient_summary", {}), (S, COND)], "fenced_json"),
    ("fenced_answer", 'Here it is:\n```json\n{"answer": "No asthma diagnosis is recorded."}\n```',
     "answer", "No asthma diagnosis is recorded.", "fenced_json"),
    ("tool_code", '```tool_code\nsearch_records(resource_type="Observation", code="HbA1c")\n```<end_of_turn>',
     "calls", [(S, HBA1C)], "tool_code"),
    ("tool_code_print_api", '```tool_code\nprint(default_api.search_records(resource_type="Condition"))\n```',
     "calls", [(S, COND)], "tool_code"),
    ("tool_code_nested", '```tool_code\nsearch_records(resource_type="Observation", filters={"value-quantity": "gt7", "status": "final"}, '
                         'limit=5, sort=None)\n```',
     "calls", [(S, {"resource_type": "Observation", "filters": {"value-quantity": "gt7", "status": "final"},
                    "limit": 5, "sort": None})], "tool_code"),
    ("python_two_calls", "```python\npatient_summary()\nsearch_records(resource_type='Condition', status='active')\n```",
     "calls", [("patient_summary", {}), (S, {"resource_type": "Condition", "status": "active"})], "tool_code"),
    ("bare_python_line", 'Let me check the diagnoses.\nsearch_records(resource_type="Condition")', "calls", [(S, COND)], "python_call"),
    ("inline_python", 'I will call search_records(resource_type="Condition") to check.', "calls", [(S, COND)], "python_call"),
    ("tool_call_tag", '<tool_call>\n{"name": "search_records", "arguments": {"resource_type": "Condition"}}\n</tool_call>',
     "calls", [(S, COND)], "tool_call_tag"),
    ("thinking_then_json", T + "The question asks for the latest HbA1c {lab}. I should search Observations.\n" + E
     + '{"tool": "search_records", "args": {"resource_type": "Observation", "code": "HbA1c"}}', "calls", [(S, HBA1C)], "json"),
    ("thinking_then_prose", T + "The search returned one row.\n" + E + "The latest HbA1c is 7.1 % (Observation/ebf6f24a).",
     "answer", "The latest HbA1c is 7.1 % (Observation/ebf6f24a).", "prose"),
    ("thinking_then_marker", T + "Done.\n" + E + "Final answer: No statin is prescribed.", "answer", "No statin is prescribed.",
     "answer_marker"),
    ("close_marker_only", 'checking...\n<unused95>{"tool": "patient_summary", "args": {}}', "calls", [("patient_summary", {})], "json"),
    ("prose_then_json", 'To answer this I need the conditions.\n{"tool": "search_records", "args": {"resource_type": "Condition"}}',
     "calls", [(S, COND)], "json_in_prose"),
    ("json_then_prose", '{"tool": "search_records", "args": {"resource_type": "Condition"}}\nThis lists the diagnoses.',
     "calls", [(S, COND)], "json_in_prose"),
    ("duplicate_in_prose", 'I will call {"tool": "patient_summary", "args": {}} now: {"tool": "patient_summary", "args": {}}',
     "calls", [("patient_summary", {})], "json_in_prose"),
    ("final_answer_line", "The search found one result.\nFinal answer: The patient is allergic to penicillin (AllergyIntolerance/de5fa8e2).",
     "answer", "The patient is allergic to penicillin (AllergyIntolerance/de5fa8e2).", "answer_marker"),
    ("answer_caps", "ANSWER: No HbA1c result is recorded.", "answer", "No HbA1c result is recorded.", "answer_marker"),
    ("markdown_answer", "**Final Answer:** Type 2 diabetes since 2017-03-15 (Condition/99e75d63).",
     "answer", "Type 2 diabetes since 2017-03-15 (Condition/99e75d63).", "answer_marker"),
    ("trailing_comma", '{"tool": "search_records", "args": {"resource_type": "Condition",},}', "calls", [(S, COND)], "repaired_json"),
    ("single_quotes", "{'tool': 'search_records', 'args': {'resource_type': 'Condition'}}", "calls", [(S, COND)], "repaired_json"),
    ("unclosed_braces", '{"tool": "search_records", "args": {"resource_type": "Condition"', "calls", [(S, COND)], "repaired_json"),
    ("fenced_broken", "```json\n{'tool': 'patient_summary', 'args': {},}\n```", "calls", [("patient_summary", {})], "repaired_json"),
    ("prose_broken_json", "Sure, here's the call: {'tool': 'search_records', 'args': {'resource_type': 'Condition'}} and that's it.",
     "calls", [(S, COND)], "repaired_json"),
    ("end_of_turn", '{"tool": "patient_summary", "args": {}}<end_of_turn>\n', "calls", [("patient_summary", {})], "json"),
    ("runs_on_into_user_turn", '{"tool": "patient_summary", "args": {}}<end_of_turn>\n<start_of_turn>user\nTOOL RESULT (patient_summary):\n'
     'Patient X\n<end_of_turn>\n<start_of_turn>model\n{"answer": "made up"}', "calls", [("patient_summary", {})], "json"),
    ("invents_tool_result", '{"tool": "search_records", "args": {"resource_type": "Condition"}}\nuser\nTOOL RESULT (search_records):\n'
     'Condition: 1 found\n{"answer": "Diabetes (Condition/fake)"}', "calls", [(S, COND)], "json"),
    ("leading_model_marker", '<start_of_turn>model\n{"answer": "No."}', "answer", "No.", "json"),
    ("prose", "The patient's most recent blood pressure was 128/82 mmHg on 2025-06-11 (Observation/bp1).",
     "answer", "The patient's most recent blood pressure was 128/82 mmHg on 2025-06-11 (Observation/bp1).", "prose"),
    ("refusal", "I'm sorry, but I can't determine that from the available information.",
     "answer", "I'm sorry, but I can't determine that from the available information.", "prose"),
    ("prose_with_braces", "The note reads {illegible} and gives no dose.", "answer", "The note reads {illegible} and gives no dose.", "prose"),
    ("prose_with_data_json", 'The order payload was {"priority": "routine"} and it is a draft only.',
     "answer", 'The order payload was {"priority": "routine"} and it is a draft only.', "prose"),
    # broken ones
    ("empty", "", "invalid", "empty output", "empty"),
    ("only_markers", "  <end_of_turn>  ", "invalid", "empty output", "empty"),
    ("thinking_unclosed", T + "Let me think about which record type holds vaccines. Immunization", "invalid", "cut off",
     "thinking_only"),
    ("thinking_nothing_after", T + "I should search.\n" + E, "invalid", "empty output", "thinking_only"),
    ("truncated_in_string", '{"tool": "search_records", "args": {"resource_type": "Obser', "invalid", "truncated", "truncated"),
    ("truncated_after_colon", '```json\n{"tool": "search_records", "args": {"code":', "invalid", "truncated", "truncated"),
    ("truncated_answer", '{"answer": "The latest HbA1c is 7.', "invalid", "truncated", "truncated"),
    ("unknown_tool", '{"tool": "get_labs", "args": {"name": "HbA1c"}}', "invalid", "unknown tool 'get_labs'", "json"),
    ("near_miss_tool", '{"tool": "search_record", "args": {"resource_type": "Condition"}}', "invalid",
     "did you mean 'search_records'", "json"),
    ("unknown_tool_code", '```tool_code\nlookup_fhir(query="HbA1c")\n```', "invalid", "unknown tool 'lookup_fhir'", "tool_code"),
    ("positional_args", '```tool_code\nread_record("Observation/abc")\n```', "invalid", "pass arguments by name", "bad_call"),
    ("not_a_literal", "```tool_code\nsearch_records(resource_type=__import__('os').getcwd())\n```", "invalid",
     "must be literals", "bad_call"),
    ("tool_code_syntax_error", '```tool_code\nsearch_records(resource_type="Condition"\n```', "invalid", "not valid Python",
     "bad_call"),
    ("args_not_object", '{"tool": "read_record", "args": ["Observation/abc"]}', "invalid", "must be a JSON object", "bad_call"),
    ("json_not_protocol", '{"resourceType": "Observation", "id": "abc"}', "invalid", "looks like a tool call", "failed_call"),
    ("empty_answer", '{"answer": "  "}', "invalid", "answer is empty", "json"),
]


@pytest.mark.parametrize("raw,kind,expected,shape", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_parse_table(raw, kind, expected, shape):
    out = parse_output(raw, TOOLS)
    assert out.kind == kind, out
    assert out.shape == shape, out
    if kind == "calls":
        assert [(c.name, c.args) for c in out.calls] == expected
        assert out.answer is None and out.error is None
    elif kind == "answer":
        assert out.answer == expected
        assert not out.calls and out.error is None
        assert "<unused9" not in out.answer and "<end_of_turn>" not in out.answer
    else:
        assert expected in out.error
        assert not out.calls and out.answer is None


def test_table_is_large_and_covers_every_shape():
    assert len(CASES) >= 35
    shapes = {c[4] for c in CASES}
    assert {"json", "fenced_json", "tool_code", "python_call", "json_in_prose", "tool_call_tag", "repaired_json",
            "answer_marker", "prose", "empty", "truncated", "thinking_only", "bad_call", "failed_call"} <= shapes


def test_thinking_kept_out_of_answer():
    out = parse_output(T + "Step 1 {check}.\n" + E + '{"tool": "patient_summary", "args": {}}', TOOLS)
    assert out.thinking == "Step 1 {check}."
    out = parse_output(T + "reasoning here" + E + "No, nothing is recorded.", TOOLS)
    assert out.answer == "No, nothing is recorded." and out.thinking == "reasoning here"
    out = parse_output('{"thought": "need labs", "tool": "search_records", "args": {"resource_type": "Observation"}}', TOOLS)
    assert out.kind == "calls" and out.thinking == "need labs"
    assert parse_output(T + "x", TOOLS).thinking == "x"


def test_unknown_tool_lists_known_names_and_never_guesses():
    out = parse_output('{"tool": "search_record", "args": {"resource_type": "Condition"}}', TOOLS)
    assert out.kind == "invalid" and not out.calls
    for name in TOOLS:
        assert name in out.error
    out = parse_output('{"tool": "Search_Records", "args": {}}', TOOLS)
    assert out.kind == "invalid"


def test_without_tool_names_any_tool_is_accepted():
    out = parse_output('{"tool": "get_weather", "args": {"city": "Paris"}}')
    assert out.kind == "calls" and out.calls[0].name == "get_weather"
    assert parse_output("```tool_code\nget_weather(city='Paris')\n```").calls == [ToolCall(name="get_weather", args={"city": "Paris"})]


def test_tool_code_is_never_evaluated(tmp_path):
    marker = tmp_path / "pwned"
    out = parse_output(f"```tool_code\nsearch_records(resource_type=open({str(marker)!r}, 'w').write('x'))\n```", TOOLS)
    assert out.kind == "invalid" and not marker.exists()


def test_every_prefix_of_a_call_is_handled():
    """A cut-off output never raises and never yields a different call than the full one."""
    full = '<unused94>thought\nok\n<unused95>```json\n{"tool": "search_records", "args": {"resource_type": "Observation", "code": "HbA1c"}}\n```'
    for i in range(len(full) + 1):
        out = parse_output(full[:i], TOOLS)
        assert isinstance(out, ParsedOutput)
        if out.kind == "calls":
            assert out.calls[0].name == S and out.calls[0].args.get("code") in (None, "HbA1c")


@pytest.mark.parametrize("raw", ["}", "[", "```", "``````", "{}", "[]", "null", '"text"', "42", "<unused95>", "(", "print()",
                                 "{{{{", "'", '{"tool": 5}', '{"tool_calls": "x"}', "Answer:", "\x00", "def f(:"])
def test_garbage_never_raises(raw):
    out = parse_output(raw, TOOLS)
    assert out.kind in ("calls", "answer", "invalid")
    assert (out.kind == "calls") == bool(out.calls)


def test_exactly_one_of_calls_answer_error():
    for _, raw, *_ in CASES:
        out = parse_output(raw, TOOLS)
        assert sum([bool(out.calls), out.answer is not None, out.error is not None]) == 1, raw


def test_strip_thinking_and_format_call():
    assert strip_thinking(T + "hidden" + E + '{"answer": "x"}<end_of_turn>') == '{"answer": "x"}'
    call = ToolCall(name=S, args=HBA1C)
    assert parse_output(format_call(call), TOOLS).calls == [call]
    assert json.loads(format_call(call)) == {"tool": S, "args": HBA1C}


# -- validate_calls -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def schemas():
    return tool_schemas(EhrSession(None).tools())  # signatures only: no backend is touched


def test_wrong_argument_names_parse_but_do_not_validate(schemas):
    out = parse_output('{"tool": "search_records", "args": {"type": "Observation", "loinc": "4548-4"}}', TOOLS)
    assert out.kind == "calls"
    errors = validate_calls(out.calls, schemas)
    assert any("missing required argument 'resource_type'" in e for e in errors)
    assert any("unknown argument 'type'" in e and "resource_type" in e for e in errors)
    assert any("unknown argument 'loinc'" in e for e in errors)


@pytest.mark.parametrize("call,fragment", [
    (ToolCall(name=S, args={"resource_type": "Labs"}), "resource_type"),
    (ToolCall(name=S, args={"resource_type": "Observation", "limit": "five"}), "limit"),
    (ToolCall(name=S, args={"resource_type": "Observation", "filters": {"a": 1}}), "filters"),
    (ToolCall(name="read_record", args={}), "missing required argument 'reference'"),
    (ToolCall(name="draft_order", args={"kind": "MedicationRequest", "code": "x", "priority": "whenever"}), "priority"),
    (ToolCall(name="lookup", args={}), "unknown tool 'lookup'"),
    (ToolCall(name="read_record", args={"reference": None}), "missing required argument 'reference'"),
])
def test_validation_errors(schemas, call, fragment):
    errors = validate_calls([call], schemas)
    assert errors and any(fragment in e for e in errors), errors


def test_valid_calls_have_no_errors(schemas):
    calls = [ToolCall(name="patient_summary"), ToolCall(name=S, args={**HBA1C, "limit": 3, "date_from": "2020", "status": None}),
             ToolCall(name=S, args={"resource_type": "Observation", "filters": {"value-concept": "x"}}),
             ToolCall(name="read_record", args=OBS_REF),
             ToolCall(name="draft_order", args={"kind": "Observation", "code": "blood pressure", "value": "128/82"}),
             ToolCall(name="draft_order", args={"kind": "Observation", "code": "weight", "value": 81.5, "unit": "kg"})]
    assert validate_calls(calls, schemas) == []
    wrapped = [{"type": "function", "function": s} for s in schemas]
    assert validate_calls(calls, wrapped) == []
    assert validate_calls(calls, {s["name"]: s for s in schemas}) == []


def test_parser_module_is_pure():
    source = (Path(__file__).resolve().parents[1] / "agent" / "protocol" / "parser.py").read_text()
    for forbidden in ("eval(", "exec(", "open(", "import os", "subprocess", "requests", "httpx"):
        assert forbidden not in source.replace("literal_eval", "")
