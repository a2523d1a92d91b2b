"""The EHRQA oracle: it reads tool text by column names, and through the real agent it answers
every fixture question right in at most two tool calls (the tools' ceiling)."""

from __future__ import annotations

import pytest

from evals.ehrqa.generate import generate
from evals.ehrqa.oracle import IdealPlanner, answer_from, run_oracle
from evals.ehrqa.score import score_rows
from evals.ehrqa.tables import parse
from tools.fhir.store import EmbeddedStore, expand_paths

TABLE = """MedicationRequest: 5 found, newest first (authoredon le2020-01-01)
all rows: status active; by Helen Marsh; reason Essential hypertension (disorder)
date | code | display | value | id
2019-05-01 | 314076 | lisinopril 10 MG Oral Tablet | 1 tablet daily; for hypertension | mr-1
2018-05-01 | 310798 | Hydrochlorothiazide 25 MG Oral Tablet |  | mr-2
2017-05-01 | 314076 | lisinopril 10 MG Oral Tablet | 1 tablet daily | mr-3
(2 more not shown; narrow with date_from/date_to or raise limit)"""


def test_parse_reads_columns_by_name_and_the_all_rows_line():
    t = parse(TABLE)
    assert t.resource_type == "MedicationRequest" and t.total == 5 and len(t.rows) == 3
    assert t.rows[0]["by"] == "Helen Marsh" and t.rows[1]["reason"] == "Essential hypertension (disorder)"
    assert t.rows[0]["value"] == "1 tablet daily; for hypertension" and t.rows[1]["value"] == ""
    assert t.rows[2]["id"] == "mr-3" and t.rows[2]["status"] == "active"
    empty = parse("No Condition found (code http://snomed.info/sct|1; onset-date le2020-01-01).")
    assert empty.total == 0 and not empty.rows
    # An empty result that shows what lies outside its filter is still empty.
    outside = "MedicationRequest: 0 found (status active); outside it:\ndate | display | status | id\n2015-01-01 | x | stopped | m-9"
    assert parse(outside).total == 0 and not parse(outside).rows
    assert parse("No MedicationRequest with status active; 1 stopped:\n" + outside.split("\n", 1)[1]).rows == []


def test_answer_from_each_kind():
    assert answer_from(TABLE, {"kind": "first", "column": "by"}) == "Helen Marsh (MedicationRequest/mr-1)"
    assert answer_from(TABLE, {"kind": "total"}) == "5 found"
    assert answer_from(TABLE, {"kind": "any_rows"}).startswith("Yes")
    assert answer_from("No MedicationRequest found.", {"kind": "any_rows"}).startswith("No")
    where = {"kind": "first_where", "column": "reason", "match": "essential hypertension", "take": "display"}
    assert answer_from(TABLE, where).startswith("lisinopril 10 MG")
    missing = answer_from(TABLE.replace("; by Helen Marsh", ""), {"kind": "first", "column": "by"})
    assert "does not show column 'by'" in missing
    obs = "Observation: 1 found, newest first\ndate | display | value | unit | id\n2019-07-01 | BMI | 27.95 | kg/m2 | o-1"
    assert answer_from(obs, {"kind": "first", "column": "value"}) == "27.95 kg/m2 on 2019-07-01 (Observation/o-1)"
    summary = "Patient Maria Garcia | id p-1 | female | born 1962-04-17 | age 64\nRecord holds ..."
    assert answer_from(summary, {"kind": "age"}, "Question: (Today is 2020-04-16.) How old?").startswith("57 years")


def test_the_planner_fills_the_previous_date_and_never_sees_the_gold():
    from langchain_core.messages import HumanMessage

    ideal = [{"tool": "search_records", "args": {"resource_type": "Observation", "code": "a"}},
             {"tool": "search_records", "args": {"resource_type": "Observation", "code": "b", "date_from": "$prev.date"},
              "name": "body weight"}]
    model = IdealPlanner(ideal=ideal, extract={"kind": "first", "column": "value"}, names=True)
    first = model.decide([HumanMessage(content="Question: x")])
    assert first == {"tool": "search_records", "args": {"resource_type": "Observation", "code": "a"}}
    result = "TOOL RESULT (search_records):\nObservation: 1 found\ndate | value | id\n2019-07-01 | 27.9 | o-1"
    second = model.decide([HumanMessage(content="Question: x"), HumanMessage(content=result)])
    assert second["args"] == {"resource_type": "Observation", "code": "body weight", "date_from": "2019-07-01"}
    assert "gold" not in IdealPlanner.model_fields


def _check(store, questions):
    rows = run_oracle(store, questions)
    report = score_rows([q.to_json() for q in questions], rows)
    wrong = [(q.id, q.question, q.gold, r["answer"]) for q, r, s in zip(questions, rows, report["rows"]) if not s["correct"]]
    assert not wrong, wrong[:5]
    assert all(r["status"] == "completed" and r["tool_calls"] <= 2 for r in rows)
    return report


def test_oracle_answers_every_category_over_the_fixtures(store):
    questions = generate(store, seed=0, per_category=2)
    report = _check(store, questions)
    assert len(report["categories"]) == 14


@pytest.mark.slow
def test_oracle_answers_every_fixture_question(store):
    _check(store, generate(store, seed=0, per_category=None))


@pytest.mark.slow
def test_oracle_over_the_shared_synthea_patients(shared_synthea_dir, tmp_path):
    shared = EmbeddedStore(f"sqlite:///{tmp_path / 'synthea.db'}")
    assert not shared.load_paths(expand_paths([shared_synthea_dir])).errors
    try:
        _check(shared, generate(shared, seed=0, per_category=4))
    finally:
        shared.close()
