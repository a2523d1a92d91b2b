"""AgentClinic-style consultations: the deterministic measurement agent and patient, the two
judges, the doctor loop with a scripted model (JSON and AgentClinic's text protocol, gold and
failure paths), its trace, and the command end to end with resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli.main import app
from agent.models.scripted import ScriptedChatModel
from agent.trace.writer import load_trace
from evals.agentclinic import AgentClinicBenchmark
from evals.agentclinic.cases import DEFAULT_CASES, load_cases
from evals.agentclinic.judge import moderate, read_yes_no, string_verdict
from evals.agentclinic.roles import NORMAL, CaseMeasurement, CasePatient, LlmPatient
from evals.bench.runner import RunOptions, run_benchmark
from evals.bench.types import CaseContext

CASE = {"OSCE_Examination": {
    "Objective_for_Doctor": "Assess a 35-year-old woman with double vision and weakness.",
    "Patient_Actor": {"Demographics": "35-year-old female",
                      "History": "Double vision for a month. It gets worse in the evening and better after rest.",
                      "Symptoms": {"Primary_Symptom": "Double vision", "Secondary_Symptoms": ["Weak arms"]},
                      "Social_History": "Information not provided."},
    "Physical_Examination_Findings": {"Vital_Signs": {"Heart_Rate": "72 bpm", "Blood_Pressure": "125/80 mmHg"},
                                      "Neurological_Examination": {"Cranial_Nerves": "Ptosis worse on upward gaze"}},
    "Test_Results": {"Blood_Tests": {"Acetylcholine_Receptor_Antibodies": "Present (elevated)"},
                     "Imaging": {"Chest_CT": {"Findings": "No thymoma"}}},
    "Correct_Diagnosis": "Myasthenia gravis"}}
OSCE = CASE["OSCE_Examination"]


def call(tool: str, **args) -> str:
    return json.dumps({"tool": tool, "args": args})


def answer(text: str) -> str:
    return json.dumps({"answer": text})


@pytest.fixture()
def cases_file(tmp_path) -> Path:
    path = tmp_path / "cases.jsonl"
    other = json.loads(json.dumps(CASE))
    other["OSCE_Examination"]["Correct_Diagnosis"] = "Pneumonia"
    path.write_text(json.dumps(CASE) + "\n" + json.dumps(other) + "\n")
    return path


@pytest.mark.parametrize("request_name, expected", [
    ("Acetylcholine receptor antibody", "Acetylcholine Receptor Antibodies: Present (elevated)"),
    ("chest CT", "Chest CT > Findings: No thymoma"),
    ("Neurological exam", "Cranial Nerves: Ptosis"),
    ("vitals", "Heart Rate: 72 bpm"),
    ("Blood_Tests", "Present (elevated)"),
])
def test_measurement_finds_results_by_name_at_any_level(request_name, expected):
    assert expected in CaseMeasurement(OSCE).respond(request_name, []).text


@pytest.mark.parametrize("request_name", ["CBC", "MRI brain", "Chest X-ray", ""])
def test_measurement_says_normal_for_what_the_case_lacks(request_name):
    reply = CaseMeasurement(OSCE).respond(request_name, [])
    assert reply.text == NORMAL and reply.matched == []


def test_the_measurement_agent_never_sees_the_diagnosis():
    assert all("Myasthenia" not in value for _, value in CaseMeasurement(OSCE).findings)


def test_case_patient_answers_from_their_own_information():
    reply = CasePatient(OSCE).respond("Is the double vision worse in the evening?", []).text
    assert reply.startswith("Patient:") and "evening" in reply and "Myasthenia" not in reply


def test_llm_patient_gets_agentclinic_prompt_and_its_reply_is_cut_to_its_own_turn():
    model = ScriptedChatModel(outputs=["Patient: It started a month ago.\nDoctor: And then?\nPatient: more"])
    reply = LlmPatient(model, "scripted", OSCE).respond("When did it start?", [("Doctor", "Hello")])
    assert reply.text == "Patient: It started a month ago." and reply.raw_output.endswith("more")
    assert "You are a patient in a clinic" in model.calls[0].text and "Double vision" in model.calls[0].text
    assert "Doctor: Hello" in model.calls[0].text


@pytest.mark.parametrize("given, gold, right", [
    ("DIAGNOSIS READY: Myasthenia gravis", "Myasthenia gravis", True),
    ("MG", "Myasthenia Gravis", True),
    ("Iron deficiency anaemia", "Iron deficiency anemia", True),
    ("Acute MI", "Myocardial infarction", True),
    ("Kawasaki syndrome", "Kawasaki disease", True),
    ("Hodgkin lymphoma", "Non-Hodgkin lymphoma", False),
    ("Lung cancer", "Small cell lung cancer", False),
    ("Pneumonia", "Myasthenia gravis", False),
    ("", "Myasthenia gravis", False),
    ("These symptoms are consistent with a diagnosis of **myasthenia gravis** (MG).", "Myasthenia gravis", True),
    ("The presentation with fatigable ptosis and AChR antibodies is most likely myasthenia gravis.", "Myasthenia gravis", True),
    ("The symptoms are consistent with a diagnosis of **multiple sclerosis** (MS).", "Myasthenia gravis", False),
])
def test_string_match(given, gold, right):
    assert string_verdict(given, gold).correct is right


def test_read_yes_no():
    assert read_yes_no("Yes.") is True and read_yes_no("no, they differ") is False and read_yes_no("maybe") is None


def test_the_llm_judge_decides_when_it_answers_else_the_string_match():
    judge = ScriptedChatModel(outputs=["No", "I cannot tell"])
    correct, details, llm = moderate("Myasthenia gravis", "Myasthenia gravis", judge)
    assert correct is False and details["decided_by"] == "llm_judge" and details["string_match"] is True
    assert "Here is the correct diagnosis: Myasthenia gravis" in judge.calls[0].text and llm.raw == "No"
    assert judge.calls[0].stop == ["\n"] and judge.calls[0].kwargs["max_tokens"] <= 16     # Yes/No, bounded
    correct, details, _ = moderate("Myasthenia gravis", "Myasthenia gravis", judge)
    assert correct is True and details["decided_by"] == "string_match" and details["llm_judge"] is None
    correct, details, _ = moderate("", "Myasthenia gravis", judge)
    assert correct is False and details["decided_by"] == "no_diagnosis"


def consult(tmp_path, outputs, judge=None, max_turns=20):
    bench = AgentClinicBenchmark(tmp_path / "unused.jsonl", judge_model=judge, judge_label="scripted-judge",
                                 max_turns=max_turns)
    case = load_cases(write(tmp_path, CASE))[0]
    model = ScriptedChatModel(outputs=outputs)
    ctx = CaseContext(model=model, model_label="scripted", backend=None, strategy="doctor", trace_dir=tmp_path / "traces")
    return model, bench.run_case(case, ctx)


def write(tmp_path, case) -> Path:
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(case) + "\n")
    return path


def test_gold_path_with_tools_and_a_trace_like_the_agents(tmp_path):
    model, result = consult(tmp_path, [call("ask_patient", question="Is it worse in the evening?"),
                                       call("request_test", test_name="Acetylcholine receptor antibodies"),
                                       answer("DIAGNOSIS READY: Myasthenia gravis")],
                            judge=ScriptedChatModel(outputs=["Yes"]))
    assert result.status == "completed" and result.correct is True and result.answer == "Myasthenia gravis"
    assert (result.steps, result.model_calls, result.tool_calls) == (3, 3, 2)
    assert result.details["decided_by"] == "llm_judge" and result.details["string_match"] is True
    assert result.details["tests"] == ["Acetylcholine receptor antibodies"]
    assert "evening" in model.calls[1].text                                   # the patient's reply reached the doctor
    assert "Present (elevated)" in model.calls[2].text                        # and so did the test result
    assert "Myasthenia" not in model.calls[0].text                            # the doctor never sees the diagnosis
    records = load_trace(Path(result.trace_path))
    kinds = [(r.type, getattr(r, "node", getattr(r, "name", ""))) for r in records]
    assert kinds == [("run_header", ""), ("model_call", "doctor"), ("tool_call", "ask_patient"),
                     ("model_call", "doctor"), ("tool_call", "request_test"), ("model_call", "doctor"),
                     ("model_call", "moderator"), ("run_end", "")]
    assert records[0].prompts["agentclinic_doctor"] and records[0].config["roles"]["measurement"].startswith("deterministic")
    assert records[-1].status == "completed" and records[-1].answer == "Myasthenia gravis"


def test_agentclinic_text_protocol_is_understood(tmp_path):
    model, result = consult(tmp_path, ["Doctor: How long have you had double vision?", "REQUEST TEST: Chest_CT",
                                       "Thank you. DIAGNOSIS READY: MG"])
    assert result.status == "completed" and result.correct is True and result.details["decided_by"] == "string_match"
    assert "No thymoma" in model.calls[2].text and "Patient:" in model.calls[1].text


def test_no_diagnosis_within_the_turn_limit_is_max_steps_and_wrong(tmp_path):
    model, result = consult(tmp_path, [call("ask_patient", question="Any pain?")] * 2 + [call("ask_patient", question="More?")],
                            max_turns=3)
    assert result.status == "max_steps" and result.correct is False and result.details["decided_by"] == "no_diagnosis"
    assert "last turn" in model.calls[2].text


def test_last_turn_prose_is_taken_as_the_diagnosis(tmp_path):
    _, result = consult(tmp_path, [call("ask_patient", question="Any pain?"), "Myasthenia gravis"], max_turns=2)
    assert result.status == "completed" and result.correct is True


def test_a_failing_model_ends_with_status_error(tmp_path):
    _, result = consult(tmp_path, [call("ask_patient", question="Any pain?")])      # the script runs out
    assert result.status == "error" and result.correct is False and "ScriptExhausted" in result.error


def test_wrong_diagnosis_is_wrong(tmp_path):
    _, result = consult(tmp_path, [answer("DIAGNOSIS READY: Multiple sclerosis")])
    assert result.status == "completed" and result.correct is False


def test_command_runs_reports_and_resumes(tmp_path, cases_file):
    script = tmp_path / "doctor.jsonl"
    outputs = [call("request_test", test_name="AChR antibodies"), answer("DIAGNOSIS READY: Myasthenia gravis"),
               answer("DIAGNOSIS READY: Myasthenia gravis")]
    script.write_text("".join(json.dumps({"output": o}) + "\n" for o in outputs))
    out = tmp_path / "run"
    args = ["bench", "agentclinic", "--llm", f"scripted:{script}", "--cases", str(cases_file), "--patient-llm", "case",
            "--judge-llm", "none", "--out", str(out)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [(r["id"], r["correct"]) for r in rows] == [("cases-001", True), ("cases-002", False)]
    run = json.loads((out / "run.json").read_text())
    assert run["roles"]["doctor"] == f"scripted:{script}" and run["roles"]["patient"].startswith("deterministic")
    assert run["model_params"]["path"] == str(script)        # what the spec resolved to
    assert run["roles"]["moderator"] == "normalised string match only" and str(cases_file) in run["data"]
    assert "MedGemma 27B" in (out / "report.md").read_text()
    script.write_text(json.dumps({"output": answer("DIAGNOSIS READY: Pneumonia")}) + "\n")   # would change case 1
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "2 of 2 case(s) already done" in " ".join(again.output.split())
    assert [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()] == rows


def test_benchmark_over_the_shared_cases(tmp_path):
    if not DEFAULT_CASES.is_file():
        pytest.skip(f"shared AgentClinic cases not found at {DEFAULT_CASES}")
    bench = AgentClinicBenchmark()
    cases = bench.cases()
    assert len(cases) == 107 and cases[0].id == "agentclinic_medqa-001"
    model = ScriptedChatModel(outputs=[answer("DIAGNOSIS READY: Myasthenia gravis")])
    run_benchmark(bench, model=model, backend=None, report=False,
                  opts=RunOptions(model_label="scripted", strategy="doctor", out=tmp_path / "run", limit=1))
    row = json.loads((tmp_path / "run" / "results.jsonl").read_text())
    assert row["correct"] is True and row["gold"] == "Myasthenia gravis"
