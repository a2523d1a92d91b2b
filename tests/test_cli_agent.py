"""``medagent ask`` and ``medagent trace show|replay`` as a user runs them (scripted model)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from agent.cli import app
from fhir_fixtures import PATIENTS, bundle_paths

MARIA = PATIENTS["diabetic"]


@pytest.fixture(scope="module")
def store_url(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('ask') / 'store.db'}"
    result = CliRunner().invoke(app, ["fhir", "load", *map(str, bundle_paths()), "--store", url])
    assert result.exit_code == 0
    return url


@pytest.fixture
def runner(monkeypatch, tmp_path) -> CliRunner:
    for var in ("MEDAGENT_LLM", "MEDAGENT_CONFIG", "MEDAGENT_STORE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))   # sessions database goes here
    return CliRunner()


def script(tmp_path, *outputs) -> str:
    path = tmp_path / "script.jsonl"
    path.write_text("".join(json.dumps({"output": o}) + "\n" for o in outputs))
    return f"scripted:{path}"


def test_ask_json_reports_answer_status_citations_and_trace(runner, store_url, tmp_path):
    obs = json.loads(runner.invoke(app, ["fhir", "search", f"Observation?patient={MARIA.id}&code=4548-4&_sort=-date&_count=1",
                                         "--store", store_url]).stdout)["entry"][0]["resource"]
    llm = script(tmp_path, '{"tool": "search_records", "args": {"resource_type": "Observation", "code": "HbA1c"}}',
                 json.dumps({"answer": f"{obs['valueQuantity']['value']} % (Observation/{obs['id']})"}))
    trace = tmp_path / "run.jsonl"
    result = runner.invoke(app, ["ask", "What was the last HbA1c?", "-p", MARIA.id, "--llm", llm, "--store", store_url,
                                 "--trace", str(trace), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "completed" and data["cited_ids"] == [f"Observation/{obs['id']}"]
    assert data["steps"] == 2 and data["input_tokens"] > 0 and data["trace_path"] == str(trace)
    shown = runner.invoke(app, ["trace", "show", str(trace)])
    assert shown.exit_code == 0 and "search_records" in shown.stdout and "completed" in shown.stdout
    summary = json.loads(runner.invoke(app, ["trace", "show", str(trace), "--json"]).stdout)
    assert summary["status"] == "completed" and summary["tool_calls"] == 1
    replayed = runner.invoke(app, ["trace", "replay", str(trace), "--store", store_url])
    assert replayed.exit_code == 0 and "same tool calls" in replayed.stdout


def test_ask_examples_setting_reaches_the_prompt_and_the_trace(runner, store_url, tmp_path, monkeypatch):
    prompt_tokens = {}
    for setting, expected in (("on", True), ("off", False)):
        monkeypatch.setenv("MEDAGENT_EXAMPLES", setting)
        trace = tmp_path / f"{setting}.jsonl"
        result = runner.invoke(app, ["ask", "Anything?", "-p", MARIA.id, "--llm", script(tmp_path, '{"answer": "x"}'),
                                     "--store", store_url, "--trace", str(trace), "--json"])
        assert result.exit_code == 0, result.output
        header = json.loads(trace.read_text().splitlines()[0])
        assert header["config"]["examples"] is expected
        prompt_tokens[setting] = json.loads(trace.read_text().splitlines()[-1])["input_tokens"]
    assert prompt_tokens["on"] > 2 * prompt_tokens["off"] > 0    # the examples are most of the prompt


def test_ask_says_when_an_answer_cites_no_record(runner, store_url, tmp_path):
    uncited = runner.invoke(app, ["ask", "Last HbA1c?", "-p", MARIA.id, "--store", store_url,
                                  "--llm", script(tmp_path, '{"answer": "7.1 % (Observation/made-up)"}')])
    assert uncited.exit_code == 0 and "cited: none: no record a tool returned backs this answer" in uncited.stderr
    obs = json.loads(runner.invoke(app, ["fhir", "search", f"Observation?patient={MARIA.id}&code=4548-4&_count=1",
                                         "--store", store_url]).stdout)["entry"][0]["resource"]
    cited = runner.invoke(app, ["ask", "Last HbA1c?", "-p", MARIA.id, "--store", store_url, "--llm", script(
        tmp_path, '{"tool": "search_records", "args": {"resource_type": "Observation", "code": "HbA1c"}}',
        json.dumps({"answer": f"(Observation/{obs['id']})"}))])
    assert cited.exit_code == 0 and f"cited: Observation/{obs['id']}" in cited.stderr and "cited: none" not in cited.stderr


def test_ask_exits_non_zero_when_the_run_does_not_complete(runner, store_url, tmp_path):
    llm = script(tmp_path, "", "")
    result = runner.invoke(app, ["ask", "Anything?", "-p", MARIA.id, "--llm", llm, "--store", store_url])
    assert result.exit_code == 1 and "invalid_action" in result.stdout


def test_ask_about_a_patient_that_does_not_exist(runner, store_url, tmp_path):
    result = runner.invoke(app, ["ask", "Anything?", "-p", "nobody", "--llm", script(tmp_path, "{}"), "--store", store_url])
    assert result.exit_code == 1 and "does not exist" in result.stderr


def test_ask_session_carries_the_conversation(runner, store_url, tmp_path):
    first = runner.invoke(app, ["ask", "Does she have diabetes?", "-p", MARIA.id, "--session", "abc", "--store", store_url,
                                "--llm", script(tmp_path, '{"answer": "Yes, type 2."}')])
    assert first.exit_code == 0, first.output
    trace = tmp_path / "second.jsonl"
    second = runner.invoke(app, ["ask", "Since when?", "-p", MARIA.id, "--session", "abc", "--store", store_url,
                                 "--trace", str(trace), "--llm", script(tmp_path, '{"answer": "2017."}')])
    assert second.exit_code == 0
    model_call = next(json.loads(line) for line in trace.read_text().splitlines() if '"model_call"' in line)
    assert model_call["raw_output"] == '{"answer": "2017."}'
    header = json.loads(trace.read_text().splitlines()[0])
    assert header["question"] == "Since when?"
