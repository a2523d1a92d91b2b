"""``medagent llm check`` and ``medagent llm parse`` as a user runs them."""

from __future__ import annotations

import json
import socket

import pytest
from typer.testing import CliRunner

from agent.cli import app

CALL = '{"tool": "search_records", "args": {"resource_type": "Observation", "code": "HbA1c"}}'


@pytest.fixture
def runner(monkeypatch) -> CliRunner:
    for var in ("MEDAGENT_LLM", "MEDAGENT_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return CliRunner()


def test_parse_reads_a_tool_code_block_from_stdin(runner):
    raw = '<unused94>thought\nlabs first<unused95>```tool_code\nsearch_records(resource_type="Observation", code="HbA1c")\n```'
    result = runner.invoke(app, ["llm", "parse", "-"], input=raw)
    assert result.exit_code == 0
    parsed = json.loads(result.stdout)
    assert parsed["valid"] and parsed["shape"] == "tool_code" and parsed["thinking"].strip() == "labs first"
    assert parsed["calls"] == [{"name": "search_records", "args": {"resource_type": "Observation", "code": "HbA1c"}}]


def test_parse_explains_an_invalid_call_and_exits_1(runner, tmp_path):
    bad = tmp_path / "out.txt"
    bad.write_text('{"tool": "search_records", "args": {"code": "HbA1c"}}')
    result = runner.invoke(app, ["llm", "parse", str(bad)])
    assert result.exit_code == 1
    parsed = json.loads(result.stdout)
    assert not parsed["valid"] and "resource_type" in parsed["problems"]


def test_check_reports_rates_for_a_scripted_backend(runner, tmp_path):
    script = tmp_path / "run.jsonl"
    outputs = [CALL, '{"tool": "patient_summary", "args": {}}', "", '{"answer": "none"}']
    script.write_text("".join(json.dumps({"output": o, "input_tokens": 1000, "output_tokens": 20}) + "\n"
                              for o in outputs * 3))
    result = runner.invoke(app, ["llm", "check", "--llm", f"scripted:{script}", "--questions", "3", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["reachable"] and report["questions"] == 3 and len(report["turns"]) == 3
    # turn 1: a valid call; turn 2: a valid call; turn 3: "" then repaired by the next output
    assert report["schema_valid_rate"] == 1.0 and report["repaired"] == 1
    assert report["turns"][0]["tool"] == "search_records"


def test_check_names_an_unreachable_server_and_exits_3(runner):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = runner.invoke(app, ["llm", "check", "--llm", f"openai:medgemma@http://127.0.0.1:{port}/v1"])
    assert result.exit_code == 3 and f"127.0.0.1:{port}" in result.stderr


def test_a_bad_spec_is_a_usage_error(runner):
    result = runner.invoke(app, ["llm", "check", "--llm", "gpt4"])
    assert result.exit_code == 2 and "unknown model spec" in result.stderr
