"""The EHRQA scorer on hand-made answers: yes/no, numbers and units, dates, names, counts."""

from __future__ import annotations

import pytest

from evals.ehrqa.score import count_matches, dates_in, is_correct, name_matches, number_matches, score_rows, yes_no


@pytest.mark.parametrize("text, expected", [
    ("Yes, the patient has asthma (Condition/abc-1).", "yes"),
    ("No. There is no record of diabetes.", "no"),
    ("yes", "yes"),
    ("The record holds no diagnosis of gout.", "no"),
    ("The patient does not take metformin.", "no"),
    ("There is no active prescription for lisinopril.", "no"),
    ("The patient has essential hypertension, diagnosed 2016-03-02 (Condition/x-1).", "yes"),
    ("Unable to determine from the record.", "no"),
    ("", None),
])
def test_yes_no(text, expected):
    assert yes_no(text) == expected


@pytest.mark.parametrize("answer, gold, tol, unit, ok", [
    ("The latest BMI was 27.3 kg/m2 on 2019-07-01 (Observation/obs-1).", 27.34, 0.27, "kg/m2", True),
    ("BMI 27.9", 27.34, 0.27, "kg/m2", False),
    ("Weight 85.9 kg", 85.9, 0.86, "kg", True),
    ("Weight 189.4 lb", 85.9, 0.86, "kg", True),          # converted
    ("Weight 85.9 lb", 85.9, 0.86, "kg", False),          # the right number in the wrong unit
    ("Height 108.4 cm", 108.36, 1.08, "cm", True),
    ("Height 42.7 in", 108.36, 1.08, "cm", True),
    ("Temperature 99.5 °F", 37.5, 0.375, "Cel", True),
    ("HbA1c 5.8% measured 2020-01-05", 5.8, 0.058, "%", True),
    ("Measured on 2020-05-08: 12.5", 5.0, 0.05, "%", False),  # the date's numbers are not values
    ("Blood pressure 128/82 mmHg on 2020-03-01", "128/82", 1.0, "mm[Hg]", True),
    ("Blood pressure 128 over 82", "128/82", 1.0, "mm[Hg]", True),
    ("Blood pressure 118/82 mmHg", "128/82", 1.0, "mm[Hg]", False),
    ("The heart rate was 1,200 /min", 1200, 12, "/min", True),
])
def test_numbers_with_tolerance_and_units(answer, gold, tol, unit, ok):
    assert number_matches(answer, gold, tol, unit) is ok


def test_dates_in_many_formats():
    for text in ("2019-03-02", "on 2019-03-02T10:15:00+00:00", "2019/03/02", "03/02/2019", "March 2, 2019",
                 "2 March 2019", "Mar 2nd 2019", "the 2nd of March, 2019"):
        assert "2019-03-02" in dates_in(text), text
    assert "2019-03-02" not in dates_in("2019-03-12")
    assert "2019-02-30" not in dates_in("2019-02-30")  # not a day at all
    assert dates_in("Observation/2019-03-02-abc") == set()  # ids are not dates


def test_date_question_is_right_when_the_answer_holds_the_gold_day():
    q = {"answer_type": "date", "gold": "2016-10-12"}
    assert is_correct(q, "The last Td vaccine was given on October 12, 2016 (Immunization/im-1).")
    assert is_correct(q, "12 Oct 2016")
    assert not is_correct(q, "2016-10-13")
    assert not is_correct(q, "2016")


@pytest.mark.parametrize("answer, gold, accept, ok", [
    ("Dr. Helen Marsh (MedicationRequest/mr-1)", "Helen Marsh", ["Marsh"], True),
    ("dr. hilpert", "Sharyl Hilpert", ["Dr. Sharyl Hilpert", "Hilpert"], True),
    ("Ravi Menon", "Helen Marsh", ["Marsh"], False),
    ("Lisinopril 10 MG Oral Tablet", "lisinopril", [], True),
    ("Oxycodone Hydrochloride 5 MG / Acetaminophen 325 MG", "acetaminophen/oxycodone", [], True),
    ("acetaminophen", "acetaminophen/oxycodone", [], False),
    ("Vicodin", "acetaminophen/hydrocodone", ["Acetaminophen 300 MG / HYDROcodone Bitartrate 5 MG [Vicodin]", "Vicodin"], True),
    ("Atorvastatin", "simvastatin", ["Simvistatin 10 MG"], False),
])
def test_names(answer, gold, accept, ok):
    assert name_matches(answer, gold, accept) is ok


@pytest.mark.parametrize("answer, gold, question, ok", [
    ("3 found", 3, "", True),
    ("The patient had three emergency visits in 2019.", 3, "How many emergency visits did the patient have in 2019?", True),
    ("In 2019 there were 2 visits.", 2019, "How many visits in 2019?", False),   # the year is not a count
    ("There were no emergency visits in 2016.", 0, "How many emergency visits in 2016?", True),
    ("4 measurements between 2019-01-01 and 2019-12-31", 4, "", True),
    ("5", 4, "", False),
])
def test_counts(answer, gold, question, ok):
    assert count_matches(answer, gold, question) is ok


def test_text_answers_hold_the_gold_and_score_rows_counts_failed_runs_wrong():
    questions = [
        {"id": "a", "category": "patient_lookup", "answer_type": "text", "gold": "ABC-123"},
        {"id": "b", "category": "condition_existence", "answer_type": "yesno", "gold": "no"},
        {"id": "c", "category": "condition_existence", "answer_type": "yesno", "gold": "yes"},
        {"id": "d", "category": "age", "answer_type": "number", "gold": 57, "tolerance": 0},
    ]
    answers = [
        {"id": "a", "answer": "Patient id abc-123", "status": "completed", "model_calls": 2, "input_tokens": 100},
        {"id": "b", "answer": "No final answer (max_steps).", "status": "max_steps", "model_calls": 8},
        {"id": "c", "answer": "Yes", "status": "completed", "model_calls": 2, "input_tokens": 300},
    ]
    report = score_rows(questions, answers)
    assert report["n"] == 4 and report["correct"] == 2
    assert report["categories"]["condition_existence"] == {"n": 2, "correct": 1, "accuracy": 0.5}
    assert report["categories"]["age"]["correct"] == 0
    assert report["statuses"] == {"completed": 2, "max_steps": 1, "missing": 1}
    assert report["per_question"]["model_calls"] == 3.0 and report["per_question"]["input_tokens"] == 100.0


def test_cli_score_prints_the_table_and_json(tmp_path):
    import json

    from typer.testing import CliRunner

    from agent.cli.main import app

    questions = [{"id": "q1", "category": "observation_value", "answer_type": "number", "gold": 27.34,
                  "tolerance": 0.27, "unit": "kg/m2"},
                 {"id": "q2", "category": "immunization_date", "answer_type": "date", "gold": "2016-10-12"}]
    answers = [{"id": "q1", "answer": "27.3 kg/m2 (Observation/o-1)", "status": "completed", "model_calls": 2,
                "input_tokens": 900, "output_tokens": 50},
               {"id": "q2", "answer": "2016-10-13", "status": "completed", "model_calls": 2}]
    qf, af = tmp_path / "q.jsonl", tmp_path / "a.jsonl"
    qf.write_text("\n".join(json.dumps(q) for q in questions) + "\n")
    af.write_text("\n".join(json.dumps(a) for a in answers) + "\n")
    table = CliRunner().invoke(app, ["ehrqa", "score", str(af), "--questions", str(qf)])
    assert table.exit_code == 0, table.output
    assert "observation_value" in table.output and "50.0%" in table.output and "completed 2" in table.output
    as_json = CliRunner().invoke(app, ["ehrqa", "score", str(af), "--questions", str(qf), "--json"])
    report = json.loads(as_json.stdout)
    assert report["correct"] == 1 and report["categories"]["immunization_date"]["correct"] == 0
