"""The agent graph driven by a scripted model over the fixture store: routing, errors as
observations, budgets and statuses, repeated calls, sessions, patient scope, injection text,
traces and replay."""

from __future__ import annotations

import json
import re

import pytest

from agent.models.scripted import ScriptedChatModel
from agent.replay import replay_trace
from agent.run import run_question
from agent.trace.records import RunEnd, RunHeader, ToolCallRecord
from agent.trace.writer import load_trace
from fhir_fixtures import PATIENTS

MARIA, LUCAS = PATIENTS["diabetic"], PATIENTS["asthma_child"]


def call(tool: str, **args) -> str:
    return json.dumps({"tool": tool, "args": args})


def answer(text: str) -> str:
    return json.dumps({"answer": text})


@pytest.fixture(scope="module")
def latest_hba1c(store) -> dict:
    return store.resources("Observation", [("patient", MARIA.id), ("code", "4548-4"), ("_sort", "-date"), ("_count", "1")])[0]


def ask(store, outputs, question="What was the most recent HbA1c?", patient=MARIA.id, **kwargs):
    model = ScriptedChatModel(outputs=outputs)
    return model, run_question(question, backend=store, patient_id=patient, model=model, model_label="scripted", **kwargs)


def test_tool_call_then_answer_completes_with_cited_ids(store, latest_hba1c, tmp_path):
    ref = f"Observation/{latest_hba1c['id']}"
    trace = tmp_path / "t.jsonl"
    model, result = ask(store, [call("search_records", resource_type="Observation", code="HbA1c", limit=3),
                                answer(f"Most recent HbA1c: {latest_hba1c['valueQuantity']['value']} % ({ref}), and (Observation/made-up).")],
                        trace_path=trace)
    assert result.status == "completed" and result.steps == 2 and result.tool_calls == 1
    assert result.cited_ids == [ref]                      # an id no tool showed is not a citation
    assert latest_hba1c["id"] in model.calls[1].text      # the tool's table reached the planner
    records = load_trace(trace)
    assert isinstance(records[0], RunHeader) and records[0].prompts["planner"]
    assert [type(r).__name__ for r in records if not r.type == "route"] == \
        ["RunHeader", "ModelCallRecord", "ToolCallRecord", "ModelCallRecord", "RunEnd"]
    tool = next(r for r in records if isinstance(r, ToolCallRecord))
    assert tool.name == "search_records" and ref in tool.resource_ids and tool.error is None
    end = records[-1]
    assert isinstance(end, RunEnd) and end.status == "completed" and end.input_tokens == result.input_tokens > 0


def test_a_tool_error_is_an_observation_not_a_crash(store):
    model, result = ask(store, [call("read_record", reference="not a reference"), answer("Could not read it.")])
    assert result.status == "completed"
    assert "ERROR:" in model.calls[1].text and "Type/id" in model.calls[1].text


def test_another_patients_record_is_refused_by_the_tool(store):
    other = store.resources("Observation", [("patient", LUCAS.id), ("_count", "1")])[0]
    model, result = ask(store, [call("read_record", reference=f"Observation/{other['id']}"), answer("Refused.")])
    seen = model.calls[1].text
    assert "not part of the bound patient's record" in seen and str(other.get("valueQuantity", {}).get("value", "@@")) not in seen.split("TOOL RESULT (")[-1]
    # find_patient is not offered in a bound session: a call to it is refused, never run
    model, result = ask(store, [call("find_patient", name="Garcia"), answer("Only one.")])
    assert "find_patient" not in model.calls[0].messages[0].content
    assert result.tool_calls == 0 and "TOOL RESULT (" not in model.calls[1].text
    assert "find_patient" in model.calls[1].messages[-1].content      # the repair turn names the bad tool
    assert LUCAS.id not in model.calls[1].text


def test_injection_text_in_a_note_is_data_and_changes_no_scope(store):
    notes = store.resources("DocumentReference", [("patient", MARIA.id)])
    import base64
    poisoned = next(n for n in notes if b"IGNORE ALL PREVIOUS" in base64.b64decode(n["content"][0]["attachment"]["data"]))
    # a model that obeys the note tries to reach other patients: the tools refuse every way
    model, result = ask(store, [call("read_record", reference=f"DocumentReference/{poisoned['id']}"),
                                call("search_records", resource_type="Observation", filters={"patient": LUCAS.id}),
                                call("read_record", reference=f"Patient/{LUCAS.id}"),
                                answer("The note asks to list patients; ignored.")],
                        question="What does the last note say?")
    seen = model.calls[1].text
    assert "IGNORE ALL PREVIOUS INSTRUCTIONS" in seen            # shown to the model, as record data
    assert "is not allowed: this session is bound to one patient" in model.calls[2].text
    last = model.calls[3].text.split("TOOL RESULT (")[-1]
    assert "not part of the bound patient's record" in last and LUCAS.given not in last
    results = "\n".join(m.text for m in model.calls[3].messages if m.text.startswith("TOOL RESULT ("))
    others = [p for p in PATIENTS.values() if p.id != MARIA.id]
    assert all(p.given not in results for p in others)    # nothing of another patient's record came back
    assert all(p.id not in results for p in others if p.id != LUCAS.id)  # (LUCAS.id: the model's own call, echoed)
    assert result.status == "completed"


def test_step_limit_ends_with_max_steps_and_a_partial_answer(store):
    outputs = [call("search_records", resource_type="Observation", code=c) for c in ("HbA1c", "glucose", "BMI", "weight")]
    _, result = ask(store, outputs, max_steps=2)
    assert result.status == "max_steps" and result.steps == 2
    assert result.answer.startswith("No final answer (step limit 2 reached)") and result.cited_ids


def test_token_budget_ends_with_context_limit(store):
    _, result = ask(store, [{"output": call("patient_summary"), "input_tokens": 5000, "output_tokens": 10},
                            answer("x")], max_tokens=1000)
    assert result.status == "context_limit" and result.model_calls == 1


def test_a_repeated_identical_call_is_not_run_again_and_then_stopped(store):
    same = call("search_records", resource_type="Condition")
    model, result = ask(store, [same, same, same])
    assert result.tool_calls == 1 and result.status == "invalid_action" and "repeated" in result.error
    assert "already called search_records" in model.calls[2].text


def test_an_answer_denying_the_records_just_found_is_sent_back_once(store, latest_hba1c, tmp_path):
    search = call("search_records", resource_type="Observation", code="HbA1c", limit=1)
    trace = tmp_path / "t.jsonl"
    model, result = ask(store, [search, answer("No HbA1c was found."), answer("Still none.")],
                        question="What was the latest HbA1c value?", trace_path=trace)
    assert result.status == "completed" and result.answer == "Still none."      # the second answer stands
    assert result.model_calls == 3 and result.tool_calls == 1
    sent_back = model.calls[2].text
    assert "Your answer says none was found" in sent_back
    assert re.search(r'first line: "Observation: \d+ found, newest first', sent_back)   # the result's first line, quoted
    routes = [r for r in load_trace(trace) if r.type == "route"]
    assert any("denies the records" in r.reason for r in routes)

    _, right = ask(store, [search, answer(f"{latest_hba1c['valueQuantity']['value']} %")],
                   question="What was the latest HbA1c value?")
    assert right.model_calls == 2                                                # an answer that uses them: no challenge
    _, yes_no = ask(store, [search, answer("No.")], question="Has she had an HbA1c above 12%?")
    assert yes_no.model_calls == 2 and yes_no.answer == "No."                    # a 'no' can be the answer there
    _, empty = ask(store, [call("search_records", resource_type="Observation", code="HbA1c", date_from="1900",
                                date_to="1901"), answer("None was found.")], question="What was the HbA1c in 1900?")
    assert empty.model_calls == 2                                                # nothing was found: nothing to deny


def test_unusable_output_twice_ends_with_invalid_action(store):
    _, result = ask(store, ["", '{"tool": "fly_to_moon", "args": {}}'])
    assert result.status == "invalid_action" and result.model_calls == 2


def test_a_failing_model_ends_with_error(store):
    _, result = ask(store, [])
    assert result.status == "error" and "ScriptExhausted" in result.error


def test_tools_failing_three_steps_in_a_row_end_with_tool_error(store):
    bad = [call("read_record", reference=f"Observation/missing-{i}") for i in range(3)]
    _, result = ask(store, bad)
    assert result.status == "tool_error" and result.tool_calls == 3


def test_session_resumes_with_the_earlier_question(store, tmp_path):
    from langgraph.checkpoint.sqlite import SqliteSaver

    with SqliteSaver.from_conn_string(str(tmp_path / "sessions.sqlite")) as saver:
        _, first = ask(store, [answer("She has type 2 diabetes.")], question="Does she have diabetes?",
                       session_id="s1", checkpointer=saver)
        model, second = ask(store, [answer("Metformin.")], question="What is it treated with?",
                            session_id="s1", checkpointer=saver)
    assert first.status == second.status == "completed"
    assert "Does she have diabetes?" in model.calls[0].text and "She has type 2 diabetes." in model.calls[0].text


def test_now_is_told_to_the_planner(store):
    model, _ = ask(store, [answer("ok")], now="2026-01-15")
    assert "Reference date (today): 2026-01-15. Not a search filter" in model.calls[0].text


def test_the_planner_reads_age_and_sex_from_the_banner_and_may_cite_it(store):
    from datetime import date

    born = date.fromisoformat(MARIA.birth_date)
    age = 2026 - born.year - ((1, 15) < (born.month, born.day))
    model, result = ask(store, [answer(f"{age} years old (Patient/{MARIA.id})")], question="How old is she?",
                        now="2026-01-15")
    turn = model.calls[0].text
    assert f"Patient: Patient/{MARIA.id} | {MARIA.gender} | born {MARIA.birth_date} | age {age} on 2026-01-15" in turn
    assert "\nAnswer with: an age in years (the Patient line above gives it).\n" in turn                # the form the question asks for
    assert result.tool_calls == 0 and result.cited_ids == [f"Patient/{MARIA.id}"]
    # Another patient's id in an answer is never a citation.
    _, other = ask(store, [answer(f"See Patient/{LUCAS.id}")], question="How old is she?")
    assert other.cited_ids == []


def test_replay_reproduces_the_run(store, latest_hba1c, tmp_path):
    trace = tmp_path / "r.jsonl"
    ask(store, ["", call("search_records", resource_type="Observation", code="HbA1c"),
                answer(f"7.1 % (Observation/{latest_hba1c['id']})")], trace_path=trace)
    report = replay_trace(trace, store)
    assert report.matches, report.differences
    assert report.replayed["tool_calls"] == 1


def test_replay_notices_a_different_run(store, tmp_path):
    trace = tmp_path / "r.jsonl"
    ask(store, [call("search_records", resource_type="Observation", code="HbA1c"), answer("done")], trace_path=trace)
    lines = trace.read_text().splitlines()
    edited = [json.loads(line) for line in lines]
    for rec in edited:  # tamper with the recorded output: the replay must notice
        if rec["type"] == "model_call" and "search_records" in rec["raw_output"]:
            rec["raw_output"] = call("search_records", resource_type="Condition")
    trace.write_text("\n".join(json.dumps(r) for r in edited) + "\n")
    report = replay_trace(trace, store)
    assert not report.matches and "tool calls differ" in report.differences[0]


def test_redacted_trace_keeps_no_patient_content(store, tmp_path):
    trace = tmp_path / "red.jsonl"
    ask(store, [call("search_records", resource_type="Observation", code="HbA1c"), answer("HbA1c 7.1 % for Maria Garcia")],
        trace_path=trace, redact=True)
    text = trace.read_text()
    assert "Maria" not in text and "7.1" not in text and "HbA1c 7.1" not in text
    with pytest.raises(ValueError, match="redact"):
        replay_trace(trace, store)


def test_navigator_strategy_runs_end_to_end(store, latest_hba1c):
    ref = f"Observation/{latest_hba1c['id']}"
    # 12 HbA1c results are read as raw FHIR JSON, 5 a call: three extraction calls.
    outputs = ['{"types": ["Observation"]}', '{"fetches": [{"resource_type": "Observation", "code": "HbA1c"}]}',
               f"2025-06-11 HbA1c 7.1 % ({ref})", "none", "none",
               answer(f"The most recent HbA1c was 7.1 % ({ref}).")]
    model, result = ask(store, outputs, strategy="navigator")
    assert result.status == "completed" and result.cited_ids == [ref]
    assert result.model_calls == 6 and result.tool_calls == 2       # patient_summary + one search
    first_batch = model.calls[2].text
    assert '"resourceType":"Observation"' in first_batch and latest_hba1c["id"] in first_batch   # raw JSON, newest first
    assert PATIENTS["asthma_child"].id not in first_batch


def test_worked_examples_only_for_base_models_unless_asked(store, tmp_path):
    from agent.models import uses_examples
    from agent.models.embedded import EmbeddedChatModel

    assert EmbeddedChatModel(model_key="gemma3-270m").needs_examples is True        # a base model copies the turns it sees
    assert EmbeddedChatModel(model_key="qwen2.5-coder-1.5b").needs_examples is False  # an instruct model does not
    assert uses_examples(ScriptedChatModel(outputs=[])) is False  # instruction-tuned by default
    assert uses_examples(ScriptedChatModel(outputs=[]), "on") is True
    with pytest.raises(ValueError, match="auto, on or off"):
        uses_examples(ScriptedChatModel(outputs=[]), "sometimes")
    lean, _ = ask(store, [answer("x")], trace_path=tmp_path / "lean.jsonl")
    shown, _ = ask(store, [answer("x")], examples="on", trace_path=tmp_path / "shown.jsonl")
    assert "Worked example" not in lean.calls[0].text and "Worked example" in shown.calls[0].text
    assert len(lean.calls[0].text) * 2 < len(shown.calls[0].text)
    lean_header, shown_header = load_trace(tmp_path / "lean.jsonl")[0], load_trace(tmp_path / "shown.jsonl")[0]
    assert lean_header.config["examples"] is False and lean_header.prompts.keys() == {"planner"}
    assert shown_header.config["examples"] is True and shown_header.prompts.keys() == {"planner", "fewshot_planner"}
    assert replay_trace(tmp_path / "shown.jsonl", store).matches  # replay runs with the recorded setting
