"""MedAgentBench-compatible runs over the fixture store: their task file, the generator, the
protocol end to end with a scripted model (a right run and the ways to fail), agent mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.models.scripted import ScriptedChatModel
from agent.trace.records import RunEnd, RunHeader, ToolCallRecord
from agent.trace.writer import load_trace
from evals.bench.types import BenchCase, CaseContext
from evals.medagentbench import make_benchmark
from evals.medagentbench.benchmark import PUBLISHED, MedAgentBenchmark
from evals.medagentbench.facts import facts_from_backend
from evals.medagentbench.generate import generate_tasks
from evals.medagentbench.grade import Facts, expected_answer
from evals.medagentbench.protocol import MAX_ROUNDS, PROMPT, STORE_API_BASE
from evals.medagentbench.tasks import KINDS, load_funcs, load_tasks, task_from_json
from fhir_fixtures import PATIENTS, bundle_paths

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "medagentbench"
MARIA = PATIENTS["diabetic"]


@pytest.fixture(scope="module")
def bench(store) -> MedAgentBenchmark:
    return MedAgentBenchmark("generated", backend=store, per_kind=3, seed=7)


def ctx(tmp_path, model, store) -> CaseContext:
    return CaseContext(model=model, model_label="scripted", backend=store, strategy="react", trace_dir=tmp_path)


def case(bench, case_id) -> BenchCase:
    return next(c for c in bench.cases() if c.id == case_id)


def gold(c: BenchCase):
    task = task_from_json(c.data)
    return task, expected_answer(task, Facts.from_json(task.rules["facts"]))


# -- their files -----------------------------------------------------------------------------

def test_loader_reads_their_task_and_function_files():
    if not (SHARED / "test_data_v2.json").is_file():
        pytest.skip(f"MedAgentBench data not found at {SHARED}")
    tasks = load_tasks(SHARED / "test_data_v2.json")
    assert len(tasks) == 300 and {t.kind for t in tasks} == set(KINDS)
    by_id = {t.id: t for t in tasks}
    assert by_id["task1_1"].sol == ["S6534835"] and by_id["task2_1"].sol is None
    assert by_id["task1_29"].sol == ["Patient not found"] and by_id["task1_29"].eval_mrn == ""
    assert by_id["task4_1"].now == "2023-11-13T10:15:00+00:00" and by_id["task4_1"].code == "MG"
    assert by_id["task5_1"].ndc == "0338-1715-40" and by_id["task9_1"].order_loinc == "2823-3"
    assert by_id["task10_1"].code == "A1C" and by_id["task10_1"].order_loinc == "4548-4"
    assert by_id["task8_1"].snomed == "306181000000106" and by_id["task8_1"].quoted.startswith("Situation:")
    assert by_id["task3_1"].quoted == "118/77 mmHg" and by_id["task3_1"].flowsheet == "BP"
    funcs = load_funcs(SHARED / "funcs_v1.json")
    assert len(funcs) == 9 and funcs[0]["name"].startswith("GET {api_base}")


def test_make_benchmark_on_their_file_describes_and_publishes(store):
    if not (SHARED / "test_data_v2.json").is_file():
        pytest.skip(f"MedAgentBench data not found at {SHARED}")
    b = make_benchmark(str(SHARED / "test_data_v2.json"), None, "sqlite:///unused.db", "protocol", 0, None)
    cases = b.cases()
    assert [c.category for c in cases[:10]] == list(KINDS)          # interleaved: --limit samples every kind
    d = b.describe()
    assert len(d["data"]["tasks_sha256"]) == 64 and d["mode"] == "protocol" and d["seed"] == 0
    assert {p["model"]: p["score"] for p in b.published()} == {"Claude 3.5 Sonnet v2": 69.67, "GPT-4o": 64.0,
                                                               "Gemma 2 27B": 19.33}
    assert all("comparable only" in p["note"] for p in PUBLISHED)


# -- generator -------------------------------------------------------------------------------

def test_generator_is_deterministic_and_covers_every_kind(store):
    a = [t.to_json() for t in generate_tasks(store, 3, seed=1)]
    assert a == [t.to_json() for t in generate_tasks(store, 3, seed=1)]
    assert a != [t.to_json() for t in generate_tasks(store, 3, seed=2)]
    assert {t["id"].split("_")[0] for t in a} == set(KINDS)
    assert len({t["id"] for t in a}) == len(a)
    assert [t.kind for t in generate_tasks(store, 1, seed=0)] == list(KINDS)   # one of each, even where a kind mixes cases


def test_generated_golds_match_the_data(store):
    for task in generate_tasks(store, 3, seed=1):
        assert Facts.from_json(task.rules["facts"]) == facts_from_backend(task, store), task.id
        if task.kind == "task1":
            name_dob = task.instruction.split("name ")[1].split("?")[0]
            name, dob = name_dob.split(" and DOB of ")
            hits = [p for p in PATIENTS.values() if p.name == name and p.birth_date == dob]
            assert task.sol == ([hits[0].id] if hits else ["Patient not found"])
        if task.kind == "task2":
            p = next(p for p in PATIENTS.values() if p.id == task.eval_mrn)
            now = task.now
            age = int(now[:4]) - int(p.birth_date[:4]) - ((now[5:10]) < p.birth_date[5:10])
            assert expected_answer(task, Facts.from_json(task.rules["facts"])) == [age]


def test_generated_value_tasks_follow_the_window(store):
    tasks = {t.id: t for t in generate_tasks(store, 3, seed=7)}
    maria_glucose = [v for _, v in facts_from_backend(tasks["task4_1"], store).observations]
    t = tasks["task4_1"]
    got = expected_answer(t, Facts.from_json(t.rules["facts"]))[0]
    assert got == -1 or got in maria_glucose


# -- protocol mode ---------------------------------------------------------------------------

def test_protocol_right_run_is_traced_and_graded(tmp_path, store, bench):
    c = case(bench, "task4_1")
    task, want = gold(c)
    model = ScriptedChatModel(outputs=[f"GET {STORE_API_BASE}Observation?patient={task.eval_mrn}&code={task.code}",
                                       f"FINISH({json.dumps(want)})"])
    r = bench.run_case(c, ctx(tmp_path, model, store))
    assert r.correct is True and r.status == "completed" and r.steps == 2 and r.tool_calls == 1
    first = model.calls[0].text
    assert first.startswith(PROMPT.split("{")[0]) and f"use {STORE_API_BASE} as the api_base" in first
    assert task.instruction in first and task.context in first and '"GET {api_base}/Observation"' in first
    reply = model.calls[1].messages[-1].text
    assert reply.startswith("Here is the response from the GET request:\n{") and '"searchset"' in reply
    records = load_trace(r.trace_path)
    assert [type(x).__name__ for x in records] == ["RunHeader", "ModelCallRecord", "ToolCallRecord",
                                                     "ModelCallRecord", "RunEnd"]
    assert isinstance(records[2], ToolCallRecord) and records[2].name == "GET" and records[2].args["url"].endswith("&_format=json")
    assert isinstance(records[-1], RunEnd) and records[-1].status == "completed"


def test_protocol_order_task_posts_are_recorded_not_executed(tmp_path, store, bench):
    c = case(bench, "task3_1")
    task, _ = gold(c)
    payload = {"resourceType": "Observation",
               "category": [{"coding": [{"system": "http://hl7.org/fhir/observation-category", "code": "vital-signs",
                                         "display": "Vital Signs"}]}],
               "code": {"text": "BP"}, "effectiveDateTime": task.now, "status": "final", "valueString": task.quoted,
               "subject": {"reference": f"Patient/{task.eval_mrn}"}}
    before = store.search("Observation", [("patient", task.eval_mrn), ("_summary", "count")])["total"]
    model = ScriptedChatModel(outputs=[f"POST {STORE_API_BASE}Observation\n{json.dumps(payload)}", "FINISH([])"])
    r = bench.run_case(c, ctx(tmp_path, model, store))
    assert r.correct is True, r.details
    assert model.calls[1].messages[-1].text.startswith("POST request accepted")
    assert store.search("Observation", [("patient", task.eval_mrn), ("_summary", "count")])["total"] == before
    post = [x for x in load_trace(r.trace_path) if isinstance(x, ToolCallRecord)][0]
    assert post.name == "POST" and post.args["payload"] == payload


def test_protocol_wrong_value_bad_output_and_too_many_rounds(tmp_path, store, bench):
    c = case(bench, "task7_1")
    task, want = gold(c)
    wrong = bench.run_case(c, ctx(tmp_path / "a", ScriptedChatModel(outputs=["FINISH([12345])"]), store))
    assert wrong.correct is False and wrong.status == "completed" and "!=" in wrong.details["reason"]
    bad = bench.run_case(c, ctx(tmp_path / "b", ScriptedChatModel(outputs=["The answer is 5."]), store))
    assert bad.correct is False and bad.status == "invalid_action"
    get = f"GET {STORE_API_BASE}Observation?patient={task.eval_mrn}&code={task.code}"
    loop = ScriptedChatModel(outputs=[get] * MAX_ROUNDS)
    limited = bench.run_case(c, ctx(tmp_path / "c", loop, store))
    assert limited.correct is False and limited.status == "max_steps" and limited.steps == MAX_ROUNDS
    assert loop.remaining == 0
    assert isinstance(load_trace(limited.trace_path)[-1], RunEnd)


def test_protocol_post_on_a_query_task_fails(tmp_path, store, bench):
    c = case(bench, "task2_1")
    _, want = gold(c)
    model = ScriptedChatModel(outputs=[f'POST {STORE_API_BASE}Observation\n{{"resourceType": "Observation"}}',
                                       f"FINISH({json.dumps(want)})"])
    r = bench.run_case(c, ctx(tmp_path, model, store))
    assert r.correct is False and "POST" in r.details["reason"]
    right = bench.run_case(c, ctx(tmp_path / "r", ScriptedChatModel(outputs=[f"FINISH({json.dumps(want)})"]), store))
    assert right.correct is True


def test_protocol_get_errors_are_fed_back(tmp_path, store, bench):
    c = case(bench, "task7_1")
    model = ScriptedChatModel(outputs=[f"GET {STORE_API_BASE}Observation?nonsense=1", "FINISH([-1])"])
    bench.run_case(c, ctx(tmp_path, model, store))
    assert model.calls[1].messages[-1].text.startswith("Error in sending the GET request: 400")


def test_protocol_model_failure_is_a_status(tmp_path, store, bench):
    r = bench.run_case(case(bench, "task1_1"), ctx(tmp_path, ScriptedChatModel(outputs=[]), store))
    assert r.status == "error" and r.correct is False and "ScriptExhausted" in r.error
    header = load_trace(r.trace_path)[0]
    assert isinstance(header, RunHeader) and header.patient_id is None      # task1's answer is not in its trace header


# -- agent mode ------------------------------------------------------------------------------

def call(tool: str, **args) -> str:
    return json.dumps({"tool": tool, "args": args})


def answer(text: str) -> str:
    return json.dumps({"answer": text})


def test_agent_mode_value_answer_and_a_drafted_order(tmp_path, store):
    agent = MedAgentBenchmark("generated", backend=store, per_kind=3, seed=7, mode="agent")
    c = case(agent, "task7_1")
    task, want = gold(c)
    shown = f"{want[0]:.2f}" if isinstance(want[0], float) else str(want[0])   # tables round for reading
    r = agent.run_case(c, ctx(tmp_path, ScriptedChatModel(outputs=[
        call("search_records", resource_type="Observation", code=task.code, limit=3),
        answer(f"The most recent value is {shown} (within the last 24 hours of the record).")]), store))
    assert r.correct is True, r.details
    assert r.details["finish"] == want

    c = case(agent, "task8_1")
    task, _ = gold(c)
    r = agent.run_case(c, ctx(tmp_path / "o", ScriptedChatModel(outputs=[
        call("draft_order", kind="ServiceRequest", code="306181000000106", system="SNOMED", priority="stat",
             note=task.quoted),
        answer("Drafted the orthopedic referral.")]), store))
    assert r.correct is True, r.details
    payload = r.details["posts"][0]
    assert payload["resourceType"] == "ServiceRequest" and payload["note"]["text"] == task.quoted

    r = agent.run_case(c, ctx(tmp_path / "p", ScriptedChatModel(outputs=[
        call("draft_order", kind="ServiceRequest", code="306181000000106", system="SNOMED", note=task.quoted),
        answer("Drafted.")]), store))
    assert r.correct is False and "priority" in r.details["reason"]      # their payload must say stat


# -- through the CLI and the harness -----------------------------------------------------------

def test_cli_runs_generated_tasks_end_to_end_and_resumes(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from agent.cli import app

    for var in ("MEDAGENT_STORE", "MEDAGENT_FHIR_URL", "MEDAGENT_CONFIG", "MEDAGENT_VALIDATION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    runner, url, out = CliRunner(), f"sqlite:///{tmp_path / 'cli.db'}", tmp_path / "run"
    assert runner.invoke(app, ["fhir", "load", *map(str, bundle_paths()), "--store", url]).exit_code == 0
    script = tmp_path / "script.jsonl"
    script.write_text("\n".join(json.dumps({"output": o}) for o in ["FINISH([\"nobody\"])", "FINISH([40])"]) + "\n")
    args = ["bench", "medagentbench", "--tasks", "generated", "--store", url, "--limit", "2",
            "--llm", f"scripted:{script}", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["task1_1", "task2_1"] and all(r["status"] == "completed" for r in rows)
    assert rows[0]["correct"] is False and (out / "traces" / "task1_1.jsonl").is_file()
    run = json.loads((out / "run.json").read_text())
    assert run["describe"]["mode"] == "protocol" and run["describe"]["store"] == url
    again = runner.invoke(app, args)              # everything done: nothing runs, the script is not consumed
    assert again.exit_code == 0, again.output
    assert len((out / "results.jsonl").read_text().splitlines()) == 2


def test_protocol_against_a_server_url_sends_raw_gets_their_way(tmp_path, store):
    """With --fhir-url, GETs go out as HTTP with &_format=json appended and the body is fed back as text."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            seen.append(self.path)
            body = json.dumps({"resourceType": "Bundle", "type": "searchset", "total": 0}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+json;charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/fhir"
        b = MedAgentBenchmark("generated", fhir_url=base, backend=store, per_kind=1, seed=7)
        c = case(b, "task7_1")
        task, _ = gold(c)
        model = ScriptedChatModel(outputs=[f"GET {base}/Observation?patient={task.eval_mrn}&code={task.code}",
                                           "FINISH([-1])"])
        r = b.run_case(c, ctx(tmp_path, model, store))
        assert seen == [f"/fhir/Observation?patient={task.eval_mrn}&code={task.code}&_format=json"]
        assert f"use {base}/ as the api_base" in model.calls[0].text
        assert model.calls[1].messages[-1].text.startswith('Here is the response from the GET request:\n{"resourceType"')
        assert r.status == "completed" and b.describe()["server"] == base
    finally:
        server.shutdown()


def test_agent_answers_map_onto_their_finish_lists():
    from evals.medagentbench.agent_mode import finish_list

    def t(kind, code="2339-0"):
        return task_from_json({"id": f"{kind}_1", "instruction": "", "context": f'The code for x is "{code}".',
                               "eval_MRN": "p"})

    stored = [("2023-01-01T08:00:00+00:00", 4.473373994046302), ("2023-05-01T08:00:00+00:00", 6.21)]
    said = "The most recent value within the last 24 hours is 4.47 mmol/L on 2023-01-01 (Observation/abc-1)."
    assert finish_list(t("task4"), said, [], stored) == [4.473373994046302]     # the stored value it rounds
    assert finish_list(t("task4"), "No value in the last 24 hours.", [], stored) == [-1]
    assert finish_list(t("task5"), "No value in the last 24 hours.", [], stored) == []
    assert finish_list(t("task10", "4548-4"), "HbA1c (4548-4) was 6.21 % on 2023-05-01.", [], stored) == \
        [6.21, "2023-05-01T08:00:00+00:00"]
    assert finish_list(t("task2"), "The patient is 61 years old.", [], []) == [61]
    assert finish_list(t("task1"), "Patient not found.", [], []) == ["Patient not found"]
    assert finish_list(t("task1"), "It is Patient/abc.", ["Patient/abc"], []) == ["abc"]


def _oracle_outputs(task, facts: Facts) -> list[str]:
    """What a perfect model says in their protocol: the right POSTs (from the task's own rules), then FINISH."""
    from datetime import timedelta

    from evals.medagentbench.grade import MAGNESIUM, POTASSIUM, latest, parse_time, year_before

    subject, posts = {"reference": f"Patient/{task.eval_mrn}"}, []
    common = {"authoredOn": task.now, "status": "active", "intent": "order", "subject": subject}

    def med(ndc, route, dose, unit, rate=None):
        dr = {"doseQuantity": {"value": dose, "unit": unit}, **({"rateQuantity": rate} if rate else {})}
        return {"resourceType": "MedicationRequest", **common, "dosageInstruction": [{"route": route, "doseAndRate": [dr]}],
                "medicationCodeableConcept": {"coding": [{"system": "http://hl7.org/fhir/sid/ndc", "code": ndc}]}}

    def service(system, code, **extra):
        return {"resourceType": "ServiceRequest", **common, "priority": "stat",
                "code": {"coding": [{"system": system, "code": code}]}, **extra}

    if task.kind == "task3":
        posts.append({"resourceType": "Observation", "category": [{"coding": [{"system": "http://hl7.org/fhir/observation-category",
                      "code": "vital-signs", "display": "Vital Signs"}]}], "code": {"text": task.flowsheet},
                      "effectiveDateTime": task.now, "status": "final", "valueString": task.quoted, "subject": subject})
    if task.kind == "task8":
        posts.append(service("http://snomed.info/sct", task.snomed, note={"text": task.quoted}))
    found = latest(facts, task.now, 24 if task.kind == "task5" else None)
    if task.kind == "task5" and found:
        rules = {**MAGNESIUM, **task.rules}
        if found[0] <= rules["low_max"]:
            dose, rate = next((d, r) for b, d, r in rules["tiers"] if b is None or found[0] < b)
            posts.append(med(task.ndc, rules["route"], dose, rules["dose_unit"], {"value": rate, "unit": "h"}))
    if task.kind == "task9" and found and found[0] < POTASSIUM["goal"]:
        posts.append(med(task.ndc, "oral", (3.5 - found[0]) / 0.1 * 10, "mEq"))
        morning = (parse_time(task.now) + timedelta(days=1)).strftime("%Y-%m-%dT08:00:00+00:00")
        posts.append(service("http://loinc.org", task.order_loinc, occurrenceDateTime=morning))
    if task.kind == "task10" and (found is None or parse_time(found[1]) < year_before(task.now)):
        posts.append(service("http://loinc.org", task.order_loinc))
    want = expected_answer(task, facts)
    return [f"POST {STORE_API_BASE}{p['resourceType']}\n{json.dumps(p)}" for p in posts] + \
        [f"FINISH({json.dumps(want if want is not None else [])})"]


def test_a_perfect_protocol_run_passes_every_generated_task(tmp_path, store, bench):
    kinds_with_orders = set()
    for c in bench.cases():
        task, _ = gold(c)
        outputs = _oracle_outputs(task, Facts.from_json(task.rules["facts"]))
        if len(outputs) > 1:
            kinds_with_orders.add(task.kind)
        r = bench.run_case(c, ctx(tmp_path / c.id, ScriptedChatModel(outputs=outputs), store))
        assert r.correct is True, (c.id, r.details["reason"])
    # the fixture patients give order cases for every action kind, the low potassium (3.2) included
    assert kinds_with_orders == {"task3", "task5", "task8", "task9", "task10"}


def test_their_tasks_over_a_store_without_their_patients_are_not_graded(tmp_path, store):
    if not (SHARED / "test_data_v2.json").is_file():
        pytest.skip(f"MedAgentBench data not found at {SHARED}")
    b = MedAgentBenchmark(str(SHARED / "test_data_v2.json"), backend=store)
    model = ScriptedChatModel(outputs=["FINISH([1])"])
    r = b.run_case(case(b, "task4_1"), ctx(tmp_path, model, store))
    assert r.status == "bad_case" and r.correct is None and "S3032536" in r.error
    assert model.remaining == 1                                    # the model was not asked
