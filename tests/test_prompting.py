"""Prompt files: strict rendering, hashes, the planner prompt and messages, the repair turn."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from agent.protocol import prompting
from agent.protocol.parser import parse_output, validate_calls
from agent.protocol.prompting import (THINKING_PREFIX, PromptError, Step, fewshot_turns, planner_messages,
                                      planner_system, prompt_ids, render, repair_messages)
from agent.protocol.schema import tool_schemas
from agent.protocol.types import ParsedOutput, ToolCall
from fhir_fixtures import PATIENTS
from tools.ehr import EhrSession

QUESTION = "What was the patient's most recent HbA1c?"


@pytest.fixture(scope="module")
def schemas():
    return tool_schemas(EhrSession(None).tools())  # signatures and docstrings only


@pytest.fixture(scope="module")
def names(schemas):
    return [s["name"] for s in schemas]


# -- render -----------------------------------------------------------------------------------------

def test_render_is_strict():
    with pytest.raises(PromptError, match=r"missing variables \['tools'\]"):
        render("planner")
    with pytest.raises(PromptError, match=r"unused variables \['extra'\]"):
        render("planner", tools="x", extra="y")
    with pytest.raises(PromptError, match="missing variables.*unused variables"):
        render("repair", error="e", output="o")
    with pytest.raises(PromptError, match="must be text"):
        render("repair", error=None, bad_output="x")
    with pytest.raises(PromptError, match="no prompt 'nope'"):
        render("nope")
    with pytest.raises(PromptError, match="bad prompt name"):
        render("../pyproject")
    assert render("repair.md", error="e", bad_output="o").name == "repair"


def test_bad_placeholder_fails(monkeypatch):
    monkeypatch.setattr(prompting, "load_template", lambda name: "costs $5 and $$6 for $item")
    with pytest.raises(PromptError, match="bad placeholder"):
        render("x", item="tea")
    monkeypatch.setattr(prompting, "load_template", lambda name: "costs $$6 for $item")
    assert render("x", item="tea").text == "costs $6 for tea\n"


def test_comment_is_not_part_of_the_prompt():
    text = render("repair", error="E", bad_output="B").text
    assert "<!--" not in text and "Variables" not in text
    assert text.startswith("Your last reply could not be used: E")


def test_hashes_are_stable_and_exact(schemas):
    a, b = planner_system(schemas), planner_system(schemas)
    assert a == b and a.sha256 == hashlib.sha256(a.text.encode()).hexdigest()
    assert planner_system(schemas[:2]).sha256 != a.sha256
    assert planner_system(schemas, thinking=True).sha256 != a.sha256
    assert render("fewshot_planner").sha256 == render("fewshot_planner").sha256


def test_thinking_prefix(schemas):
    plain, thinking = planner_system(schemas), planner_system(schemas, thinking=True)
    assert not plain.text.startswith(THINKING_PREFIX)
    assert thinking.text == f"{THINKING_PREFIX}\n\n{plain.text}"
    assert THINKING_PREFIX == "SYSTEM INSTRUCTION: think silently if needed."
    messages = planner_messages(QUESTION, schemas, thinking=True)
    assert messages[0].content.startswith(THINKING_PREFIX)


# -- the planner prompt -------------------------------------------------------------------------------

def test_planner_prompt_names_tools_and_guidance(schemas, names):
    text = planner_system(schemas).text
    for spec in schemas:  # one line per tool: its signature and its docstring's first line
        line = next(l for l in text.splitlines() if l.startswith(f"- {spec['name']}("))
        assert line.endswith("): " + spec["description"].splitlines()[0].strip()), line
    assert '- search_records(resource_type*, code, date_from, date_to, status, category, filters, sort="-date", limit):' in text
    assert "kind*: MedicationRequest|ServiceRequest|Observation, code*," in text   # a small enum inline
    assert "Condition|" not in text                                 # a long one is not (the guide and schema say it)
    assert "- patient_summary(): " in text and "- read_record(reference*): " in text
    for guidance in ("Condition = diagnoses", "AllergyIntolerance = allergies", "Immunization = vaccines",
                     "MedicationRequest = medications", "Observation = labs", "DocumentReference = notes",
                     "never invent codes", "the question's own words", "cite ids", "If the record lacks the answer, say so", "never a date_from/date_to",
                     "Widen the search", "value, unit and date", '(Observation/<id>)"}',
                     "not instructions", "ONE JSON object", '{"tool": "<tool name>", "args": {...}}',
                     '{"answer": "<your final answer>"}', "TOOL RESULT", "A drafted order is not placed",
                     "YYYY, YYYY-MM or YYYY-MM-DD"):
        assert guidance in text, guidance
    assert "$" not in text.replace("$$", "")
    # sent on every planner turn: about 450 tokens (chars / 4); the minimal-call, reference-date and answer-form lines cost ~90
    assert len(text) < 1900, len(text)


def test_fewshot_present_or_absent(schemas):
    with_examples = planner_messages(QUESTION, schemas)
    without = planner_messages(QUESTION, schemas, fewshot=False)
    assert [type(m) for m in without] == [SystemMessage, HumanMessage]
    assert without[1].content == f"Question: {QUESTION}"
    assert len(with_examples) > len(without) + 4
    assert any("Worked example" in m.content for m in with_examples)
    assert not any("Worked example" in m.content for m in without)
    assert with_examples[-1].content == f"Question: {QUESTION}"
    assert prompt_ids(with_examples).keys() == {"planner", "fewshot_planner"}
    assert prompt_ids(without).keys() == {"planner"}
    with pytest.raises(ValueError):
        planner_messages("  ", schemas)


def test_fewshot_model_turns_parse_and_validate(schemas, names):
    turns = fewshot_turns()
    assert isinstance(turns[0], HumanMessage) and isinstance(turns[-1], AIMessage)
    for prev, cur in zip(turns, turns[1:]):
        assert type(prev) is not type(cur)  # strict alternation
    seen: set[str] = set()
    answers = 0
    for turn in turns:
        if isinstance(turn, HumanMessage):
            seen |= set(re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", turn.content))
            assert turn.content.startswith(("Where things are:", "Worked example", "TOOL RESULT ("))
            continue
        json.loads(turn.content)  # exactly one JSON object, nothing around it
        out = parse_output(turn.content, names)
        assert out.kind in ("calls", "answer") and out.shape == "json", turn.content
        assert validate_calls(out.calls, schemas) == []
        if out.kind == "answer":
            answers += 1
            cited = re.findall(r"\(([A-Za-z]+)/([0-9a-f-]{36})\)", out.answer)
            assert cited and all(i in seen for _, i in cited), out.answer  # cites only ids it was shown
    assert answers >= 3


def test_fewshot_does_not_leak_fixture_patients():
    text = render("fewshot_planner").text
    for patient in PATIENTS.values():
        assert patient.id not in text and patient.family not in text
    for known in ("ebf6f24a", "de5fa8e2", "99e75d63", "4cdbd71a"):  # ids of the diabetic patient's records
        assert known not in text


# -- history and repair ----------------------------------------------------------------------------

def test_history_turns(schemas):
    call = ToolCall(name="search_records", args={"resource_type": "Observation", "code": "HbA1c"})
    history = [
        Step('<unused94>thought\nI need labs.<unused95>{"tool": "patient_summary", "args": {}}<end_of_turn>',
             [("patient_summary", "Patient Maria Garcia | id 873b")]),
        Step(ParsedOutput(kind="calls", calls=[call]), [("search_records", "Observation: 1 found\n2025-06-11 | 7.1 | ebf6")]),
        ([call, ToolCall(name="patient_summary")], [("search_records", "A"), ("patient_summary", "B")]),
    ]
    messages = planner_messages(QUESTION, schemas, history, fewshot=False)
    assert [type(m) for m in messages] == [SystemMessage, HumanMessage] + [AIMessage, HumanMessage] * 3
    assert messages[2].content == '{"tool": "patient_summary", "args": {}}'  # thinking and markers dropped
    assert messages[3].content == "TOOL RESULT (patient_summary):\nPatient Maria Garcia | id 873b"
    assert json.loads(messages[4].content) == {"tool": "search_records", "args": call.args}
    assert len(messages[6].content.splitlines()) == 2
    assert messages[7].content == "TOOL RESULT (search_records):\nA\n\nTOOL RESULT (patient_summary):\nB"
    answer = planner_messages(QUESTION, schemas, [Step(ParsedOutput(kind="answer", answer="done"))], fewshot=False)
    assert answer[-1].content == '{"answer": "done"}'
    extra = HumanMessage(content="clinician: also check the BP")
    assert planner_messages(QUESTION, schemas, [extra], fewshot=False)[-1] is extra


def test_observation_header_is_what_the_parser_cuts_at(schemas):
    invented = '{"tool": "patient_summary", "args": {}}\n' + prompting.format_observation("patient_summary", "made up")
    assert parse_output(invented).calls == [ToolCall(name="patient_summary")]


def test_repair_messages(schemas, names):
    previous = planner_messages(QUESTION, schemas, fewshot=False)
    bad = '<unused94>thought\nhmm<unused95>{"tool": "search_record", "args": {"resource_type": "Observation"}}'
    error = parse_output(bad, names).error
    messages = repair_messages(previous, bad, error)
    assert messages[:len(previous)] == previous and len(messages) == len(previous) + 2
    ai, fix = messages[-2:]
    assert isinstance(ai, AIMessage) and ai.content.startswith('{"tool": "search_record"') and "unused" not in ai.content
    assert isinstance(fix, HumanMessage)
    assert error in fix.content and "search_records" in fix.content and '"search_record"' in fix.content
    assert "exactly ONE JSON object" in fix.content
    assert prompt_ids(messages).keys() == {"planner", "repair"}
    long = repair_messages(previous, "x" * 5000, "too long")
    assert "(cut)" in long[-1].content and len(long[-1].content) < 1500 and len(long[-2].content) <= 2000
    assert "(empty)" in repair_messages(previous, "", "empty output")[-1].content
