"""EHRQA questions through the bench harness over the fixture store, with a scripted model:
generated cases, right and wrong answers, an unbound patient-lookup question, an unknown
patient, a run that ends without an answer, and the report."""

from __future__ import annotations

import json

import pytest

from agent.models.scripted import ScriptedChatModel
from evals.bench.ehrqa import EhrqaBenchmark
from evals.bench.report import load_rows
from evals.bench.runner import RunOptions, run_benchmark


@pytest.fixture(scope="module")
def questions(store) -> dict[str, dict]:
    from evals.ehrqa.generate import generate

    return {q.id: q.to_json() for q in generate(store, seed=0, per_category=2)}


def call(tool: str, **args) -> str:
    return json.dumps({"tool": tool, "args": args})


def answer(text: str) -> str:
    return json.dumps({"answer": text})


def test_generated_cases_are_deterministic_for_a_seed(store):
    a = EhrqaBenchmark(store, per_category=1, seed=3)
    b = EhrqaBenchmark(store, per_category=1, seed=3)
    assert [c.data for c in a.cases()] == [c.data for c in b.cases()]
    assert {c.category for c in a.cases()} >= {"condition_existence", "patient_lookup", "observation_value"}
    assert a.describe()["questions_sha256"] == b.describe()["questions_sha256"]


def test_run_scores_right_wrong_unbound_unknown_and_unfinished(store, questions, tmp_path):
    yes = questions["condition_existence-001"]           # gold: yes
    lookup = questions["patient_lookup-001"]              # no patient: an unbound session
    value = questions["observation_value-001"]
    unknown = {**questions["condition_existence-002"], "id": "unknown-1", "patient_id": "no-such-patient"}
    stuck = {**questions["age-001"], "id": "stuck-1"}
    rows = [yes, lookup, value, unknown, stuck]
    file = tmp_path / "questions.jsonl"
    file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    name, birth = lookup["ideal"][0]["args"]["name"], lookup["ideal"][0]["args"]["birth_date"]
    model = ScriptedChatModel(outputs=[
        answer(f"Yes, the record lists it ({yes['ideal'][0]['args']['code']})."),
        call("find_patient", name=name, birth_date=birth), answer(f"The patient id is {lookup['gold']}."),
        answer("It was 999 on that day."),
        call("no_such_tool"), call("no_such_tool"),                          # invalid, then the repair fails
    ])
    out = tmp_path / "run"
    config = run_benchmark(EhrqaBenchmark(store, questions_file=file), model=model, backend=store,
                           opts=RunOptions(model_label="scripted", out=out), report=True)
    got = {r["id"]: r for r in load_rows(out / "results.jsonl")}
    assert got[yes["id"]]["correct"] is True and got[yes["id"]]["status"] == "completed"
    assert got[lookup["id"]]["correct"] is True and got[lookup["id"]]["tool_calls"] == 1
    assert got[value["id"]]["correct"] is False and got[value["id"]]["status"] == "completed"
    assert got["unknown-1"]["status"] == "unknown_patient" and got["unknown-1"]["correct"] is None
    assert got["stuck-1"]["status"] == "invalid_action" and got["stuck-1"]["correct"] is False
    assert all(got[i]["trace_path"] for i in (yes["id"], lookup["id"], value["id"], "stuck-1"))
    assert str(file) in config["data"] and config["published"][0]["score"] == 86.3
    assert "| overall | 5 | 4 | 2 | 40.0% |" in (out / "report.md").read_text()
