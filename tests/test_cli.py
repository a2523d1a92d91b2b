"""The ``medagent`` command as a user runs it: load, search, read, stats, demo, settings."""

from __future__ import annotations

import json
import socket

import pytest
from typer.testing import CliRunner

from agent.cli import app
from fhir_fixtures import PATIENTS, bundle_paths

MARIA = PATIENTS["diabetic"]


@pytest.fixture
def runner(monkeypatch, tmp_path) -> CliRunner:
    for var in ("MEDAGENT_STORE", "MEDAGENT_FHIR_URL", "MEDAGENT_CONFIG", "MEDAGENT_VALIDATION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no user config file leaks in
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    return CliRunner()


@pytest.fixture
def store_url(runner, tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = runner.invoke(app, ["fhir", "load", *map(str, bundle_paths()), "--store", url])
    assert result.exit_code == 0, result.output
    return url


def test_load_reports_what_it_wrote(runner, tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    result = runner.invoke(app, ["fhir", "load", str(bundle_paths()[0].parent), "--store", url])
    assert result.exit_code == 0
    assert "5 file(s)" in result.stdout and "0 file(s) refused" in result.stdout and "Observation" in result.stdout
    again = runner.invoke(app, ["fhir", "load", str(bundle_paths()[0].parent), "--store", url])
    assert "0 resources written" in again.stdout


def test_load_refuses_a_bad_file_and_exits_1(runner, tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {"resourceType": "Patient", "id": "a", "gender": 7}}]}')
    url = f"sqlite:///{tmp_path / 'x.db'}"
    result = runner.invoke(app, ["fhir", "load", str(bad), "--store", url])
    assert result.exit_code == 1
    assert "broken.json" in result.stderr and "entry[0] (Patient/a)" in result.stderr and "gender" in result.stderr
    stats = runner.invoke(app, ["fhir", "stats", "--json", "--store", url])
    assert json.loads(stats.stdout) == {}


def test_load_missing_path_is_a_usage_error(runner, tmp_path):
    result = runner.invoke(app, ["fhir", "load", str(tmp_path / "nope.json"), "--store", f"sqlite:///{tmp_path / 'x.db'}"])
    assert result.exit_code == 2 and "no such file" in result.stderr


def test_search_prints_every_match_across_pages(runner, store_url):
    query = f"Observation?patient={MARIA.id}&_sort=-date"
    result = runner.invoke(app, ["fhir", "search", query, "--store", store_url])
    assert result.exit_code == 0, result.stderr
    bundle = json.loads(result.stdout)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    assert bundle["total"] == len(bundle["entry"]) > 50   # more than one page of 50, all printed
    dates = [e["resource"]["effectiveDateTime"] for e in bundle["entry"]]
    assert dates == sorted(dates, reverse=True)


def test_search_count_gives_one_page_and_summary_count_gives_the_total(runner, store_url):
    page = json.loads(runner.invoke(app, ["fhir", "search", f"Observation?patient={MARIA.id}&_count=5", "--store", store_url]).stdout)
    assert len(page["entry"]) == 5 and page["total"] > 5
    assert any(link["relation"] == "next" for link in page["link"])
    count = json.loads(runner.invoke(app, ["fhir", "search", f"Observation?patient={MARIA.id}&code=http://loinc.org|4548-4&_summary=count", "--store", store_url]).stdout)
    assert count["total"] == 12 and "entry" not in count


def test_bad_query_exits_1_with_the_operation_outcome_on_stderr(runner, store_url):
    result = runner.invoke(app, ["fhir", "search", "Observation?colour=blue", "--store", store_url])
    assert result.exit_code == 1 and result.stdout == ""
    outcome = json.loads(result.stderr[:result.stderr.rindex("}") + 1])
    assert outcome["resourceType"] == "OperationOutcome"
    assert "unknown search parameter 'colour'" in outcome["issue"][0]["diagnostics"]


def test_read_and_stats(runner, store_url):
    patient = json.loads(runner.invoke(app, ["fhir", "read", f"Patient/{MARIA.id}", "--store", store_url]).stdout)
    assert patient["name"][0]["family"] == MARIA.family
    missing = runner.invoke(app, ["fhir", "read", "Patient/nobody", "--store", store_url])
    assert missing.exit_code == 1 and "not-found" in missing.stderr
    counts = json.loads(runner.invoke(app, ["fhir", "stats", "--json", "--store", store_url]).stdout)
    assert counts["Patient"] == 5 and counts["Organization"] == 2


def test_unreachable_fhir_server_exits_3_with_a_clear_message(runner):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = runner.invoke(app, ["fhir", "search", "Patient?family=x", "--fhir-url", f"http://127.0.0.1:{port}/fhir"],
                           env={"MEDAGENT_FHIR_RETRIES": "0"})
    assert result.exit_code == 3 and f"127.0.0.1:{port}" in result.stderr


def test_settings_come_from_toml_env_and_flags_in_that_order(runner, store_url, tmp_path, monkeypatch):
    config = tmp_path / "medagent.toml"
    config.write_text(f'store = "{store_url}"\n')
    via_toml = runner.invoke(app, ["fhir", "stats", "--json", "--config", str(config)])
    assert json.loads(via_toml.stdout)["Patient"] == 5
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    monkeypatch.setenv("MEDAGENT_STORE", empty)
    assert json.loads(runner.invoke(app, ["fhir", "stats", "--json", "--config", str(config)]).stdout) == {}
    assert json.loads(runner.invoke(app, ["fhir", "stats", "--json", "--store", store_url]).stdout)["Patient"] == 5


def test_demo_loads_the_fixtures_and_lists_the_patients(runner, tmp_path):
    result = runner.invoke(app, ["demo", "--store", f"sqlite:///{tmp_path / 'demo.db'}"])
    assert result.exit_code == 0, result.output
    for patient in PATIENTS.values():
        assert patient.id in result.stdout
    assert "Observation" in result.stdout


def test_ehr_tools_from_the_command_line(runner, store_url):
    found = runner.invoke(app, ["ehr", "find", "--name", "garcia", "--store", store_url])
    assert found.exit_code == 0 and "2 patient(s) found" in found.stdout
    hba1c = runner.invoke(app, ["ehr", "search", "-p", MARIA.id, "Observation", "--code", "HbA1c", "--store", store_url])
    assert hba1c.exit_code == 0 and "12 found" in hba1c.stdout and "4548-4" in hba1c.stdout
    other = PATIENTS["asthma_child"].id
    refused = runner.invoke(app, ["ehr", "read", "-p", MARIA.id, f"Patient/{other}", "--store", store_url])
    assert refused.exit_code == 1 and "refused" in refused.stdout and "Lucas" not in refused.stdout


def test_ehr_draft_writes_only_with_allow_writes_and_a_yes(runner, store_url):
    def orders() -> int:
        bundle = runner.invoke(app, ["fhir", "search", f"ServiceRequest?patient={MARIA.id}&_summary=count", "--store", store_url])
        return json.loads(bundle.stdout)["total"]

    before = orders()
    args = ["ehr", "draft", "-p", MARIA.id, "ServiceRequest", "--code", "HbA1c", "--store", store_url]
    assert runner.invoke(app, args).exit_code == 0 and orders() == before                     # a draft only
    read_only = runner.invoke(app, [*args, "--submit"])
    assert read_only.exit_code == 1 and "read-only" in read_only.stderr and orders() == before
    declined = runner.invoke(app, [*args, "--submit", "--allow-writes"], input="n\n")
    assert declined.exit_code == 1 and orders() == before
    written = runner.invoke(app, [*args, "--submit", "--allow-writes", "--yes"])
    assert written.exit_code == 0 and "stored ServiceRequest/" in written.stdout and orders() == before + 1
