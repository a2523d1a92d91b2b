"""The EHR question-answering pipeline (agent/qa.py, ``medagent qa``): a file of questions in,
answers out, resumable, bad rows reported, lookup questions in an unbound session."""

from __future__ import annotations

import json
import re
import threading

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from typer.testing import CliRunner

from agent.batch import ResultsFile
from agent.cli import app
from agent.qa import BAD_ROW, UNKNOWN_PATIENT, QaRunner, read_questions, run_qa
from fhir_fixtures import PATIENTS, bundle_paths

MARIA, JAMES = PATIENTS["diabetic"], PATIENTS["cardiometabolic"]


class SearchThenAnswer(BaseChatModel):
    """Thread-safe test planner: first turn searches HbA1c, second answers with the newest row's
    id; it records every prompt it was given and can be told to stop the run at call N."""

    interrupt_at: int | None = None
    calls: int = 0
    prompts: list = []

    @property
    def _llm_type(self) -> str:
        return "search-then-answer"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        with _LOCK:
            self.calls += 1
            self.prompts.append("\n".join(m.text for m in messages))
            if self.interrupt_at is not None and self.calls >= self.interrupt_at:
                raise KeyboardInterrupt
        seen = re.findall(r"\| ([0-9a-f-]{36})$", messages[-1].text, re.M)
        if not messages[-1].text.startswith("Question:"):  # a tool result came back
            text = json.dumps({"answer": f"The newest HbA1c is in Observation/{seen[0]}." if seen else "none found"})
        else:
            text = json.dumps({"tool": "search_records", "args": {"resource_type": "Observation", "code": "HbA1c"}})
        msg = AIMessage(content=text, usage_metadata={"input_tokens": 100, "output_tokens": 10, "total_tokens": 110})
        return ChatResult(generations=[ChatGeneration(message=msg)])


_LOCK = threading.Lock()


def _questions(tmp_path, rows, name="questions.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _runner(store, tmp_path, model=None):
    return QaRunner(backend=store, model=model or SearchThenAnswer(), model_label="test",
                    traces_dir=tmp_path / "traces", options={"max_steps": 4})


def test_answers_every_row_with_its_fields_and_a_trace(store, tmp_path):
    rows = [{"id": f"q{i}", "patient_id": MARIA.id, "question": "Latest HbA1c?", "now": "2025-07-01"} for i in range(3)]
    out = tmp_path / "answers.jsonl"
    summary = run_qa(rows, out, _runner(store, tmp_path), show_progress=False)
    answers = [json.loads(line) for line in out.read_text().splitlines()]
    assert [a["id"] for a in answers] == ["q0", "q1", "q2"]
    for a in answers:
        assert a["status"] == "completed" and a["cited_ids"] and a["cited_ids"][0] in a["answer"]
        assert a["steps"] == 2 and a["model_calls"] == 2 and a["tool_calls"] == 1
        assert a["input_tokens"] == 200 and a["output_tokens"] == 20 and a["seconds"] > 0
        trace = [json.loads(line) for line in open(a["trace"])]
        assert trace[0]["type"] == "run_header" and trace[0]["now"] == "2025-07-01" and trace[-1]["type"] == "run_end"
    assert summary.answered == 3 and summary.statuses == {"completed": 3}


def test_bad_rows_get_a_status_and_the_run_goes_on(store, tmp_path):
    path = _questions(tmp_path, [
        {"id": "ok", "patient_id": MARIA.id, "question": "Latest HbA1c?"},
        {"id": "noq", "patient_id": MARIA.id},
        {"patient_id": MARIA.id, "question": "no id"},
        {"id": "ghost", "patient_id": "does-not-exist", "question": "Latest HbA1c?"},
        "this is not json",
        {"id": "ok", "patient_id": MARIA.id, "question": "the same id again"},
        {"id": "last", "patient_id": JAMES.id, "question": "Latest HbA1c?"},
    ])
    out = tmp_path / "answers.jsonl"
    summary = run_qa(read_questions(path), out, _runner(store, tmp_path), show_progress=False)
    answers = {a["id"]: a for a in map(json.loads, out.read_text().splitlines())}
    assert answers["ok"]["status"] == "completed" and answers["last"]["status"] == "completed"
    assert answers["noq"]["status"] == BAD_ROW and "no question" in answers["noq"]["error"]
    assert answers[""]["status"] == BAD_ROW and "no id" in answers[""]["error"]
    assert answers["ghost"]["status"] == UNKNOWN_PATIENT and "does-not-exist" in answers["ghost"]["error"]
    assert answers["line-5"]["status"] == BAD_ROW and "not JSON" in answers["line-5"]["error"]
    assert answers["ok#dup6"]["status"] == BAD_ROW and "duplicate id" in answers["ok#dup6"]["error"]
    assert summary.statuses[BAD_ROW] == 4


def test_an_interrupted_run_resumes_without_redoing_finished_rows(store, tmp_path):
    rows = [{"id": f"q{i}", "patient_id": MARIA.id, "question": "Latest HbA1c?"} for i in range(4)]
    out = tmp_path / "answers.jsonl"
    stopping = SearchThenAnswer(interrupt_at=5)   # two questions take 4 calls; the 5th call is Ctrl-C
    with pytest.raises(KeyboardInterrupt):
        run_qa(rows, out, _runner(store, tmp_path, stopping), show_progress=False)
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["q0", "q1"]
    with open(out, "ab") as fh:   # a crash mid-write leaves half a row: it is dropped, not trusted
        fh.write(b'{"id": "q2", "answer": "half')
    again = SearchThenAnswer()
    summary = run_qa(rows, out, _runner(store, tmp_path, again), show_progress=False)
    assert summary.skipped == 2 and summary.answered == 2 and again.calls == 4
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == ["q0", "q1", "q2", "q3"]


def test_results_file_keeps_whole_rows_only(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "a", "x": 1}\n{"id": "b", "x"')
    results = ResultsFile(path)
    assert set(results.done) == {"a"} and results.dropped_partial_line
    results.write({"id": "b", "x": 2})
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["a", "b"]


def test_concurrent_answers_each_row_once(store, tmp_path):
    rows = [{"id": f"q{i}", "patient_id": MARIA.id, "question": "Latest HbA1c?"} for i in range(8)]
    out = tmp_path / "answers.jsonl"
    model = SearchThenAnswer()
    summary = run_qa(rows, out, _runner(store, tmp_path, model), concurrency=4, show_progress=False)
    ids = sorted(json.loads(line)["id"] for line in out.read_text().splitlines())
    assert ids == sorted(r["id"] for r in rows) and summary.statuses == {"completed": 8} and model.calls == 16


def test_csv_questions(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text(f"id,patient_id,question,now\nc1,{MARIA.id},Latest HbA1c?,2025-01-01\nc2,,Find Maria Garcia,\n")
    rows = read_questions(path)
    assert rows[0] == {"id": "c1", "patient_id": MARIA.id, "question": "Latest HbA1c?", "now": "2025-01-01"}
    assert rows[1]["patient_id"] == ""


def test_a_lookup_question_runs_unbound_with_find_patient_only(store, tmp_path):
    class Finder(SearchThenAnswer):
        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            self.prompts.append("\n".join(m.text for m in messages))
            if "patient(s) found" in messages[-1].text:
                found = re.search(r"([0-9a-f-]{36}) \| Maria Garcia", messages[-1].text)
                text = json.dumps({"answer": f"Patient/{found.group(1)}" if found else "not found"})
            else:
                text = json.dumps({"tool": "find_patient", "args": {"name": "Maria Garcia", "birth_date": "1962-04-17"}})
            return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    model = Finder(prompts=[])
    out = tmp_path / "answers.jsonl"
    run_qa([{"id": "l1", "patient_id": "", "question": "What is the id of Maria Garcia, born 1962-04-17?"}], out,
           _runner(store, tmp_path, model), show_progress=False)
    answer = json.loads(out.read_text())
    assert answer["status"] == "completed" and answer["answer"] == f"Patient/{MARIA.id}"
    assert answer["cited_ids"] == [f"Patient/{MARIA.id}"]
    assert "find_patient(" in model.prompts[0] and "search_records(" not in model.prompts[0]


def test_cli_answers_a_file_and_resumes(store, tmp_path, monkeypatch):
    for var in ("MEDAGENT_LLM", "MEDAGENT_CONFIG", "MEDAGENT_STORE"):
        monkeypatch.delenv(var, raising=False)
    store_url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    assert runner.invoke(app, ["fhir", "load", *map(str, bundle_paths()), "--store", store_url]).exit_code == 0
    script = tmp_path / "script.jsonl"
    script.write_text("".join(json.dumps({"output": json.dumps({"answer": f"answer {i}"})}) + "\n" for i in range(2)))
    questions = _questions(tmp_path, [{"id": f"q{i}", "patient_id": MARIA.id, "question": f"Question {i}?"}
                                      for i in range(2)])
    out = tmp_path / "answers.jsonl"
    result = runner.invoke(app, ["qa", str(questions), "--out", str(out), "--llm", f"scripted:{script}",
                                 "--store", store_url, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["statuses"] == {"completed": 2} and summary["answered_now"] == 2
    assert [json.loads(line)["answer"] for line in out.read_text().splitlines()] == ["answer 0", "answer 1"]
    assert len(list((tmp_path / "answers.jsonl.traces").glob("*.jsonl"))) == 2
    again = runner.invoke(app, ["qa", str(questions), "--out", str(out), "--llm", f"scripted:{script}",
                                "--store", store_url, "--json"])
    assert json.loads(again.stdout)["resumed"] == 2 and json.loads(again.stdout)["answered_now"] == 0
    missing = runner.invoke(app, ["qa", str(tmp_path / "nope.jsonl"), "--out", str(out), "--store", store_url])
    assert missing.exit_code == 2 and "does not exist" in missing.output
