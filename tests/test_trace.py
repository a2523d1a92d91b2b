"""The trace writer, reader, redaction, rendering, summary and OpenTelemetry exporter."""

from __future__ import annotations

import hashlib
import io
import sys

import orjson
import pytest
from rich.console import Console

from agent.trace import (ModelCallRecord, RouteRecord, RunEnd, RunHeader, ToolCallRecord, TraceWriter, load_trace,
                         redact_record, render_trace, runs, summarize)
from agent.trace.redact import pseudonym, redact_args

NAME = "Zorblatt Quixana"          # planted patient content: none of it may reach a redacted file
HBA1C = "HbA1c 9.4 %"
BIRTH = "1961-04-12"
MRN = "MRN-5550917"
PLANTED = (NAME, "Zorblatt", "Quixana", HBA1C, "9.4 %", BIRTH, MRN)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def synthetic_run(tool_error: bool = False) -> list:
    """A small run that mentions the patient everywhere content can go."""
    return [
        RunHeader(run_id="", question=f"What was {NAME}'s last HbA1c?", patient_id="pat-1", model="embedded",
                  config={"max_steps": 8, "max_tokens": 60000, "constrained": True}, prompts={"planner": "ab" * 32}),
        ModelCallRecord(run_id="", step=1, prompt_messages=[{"role": "user", "content": f"Patient {NAME}, {BIRTH}"}],
                        prompt_sha256="cd" * 32, raw_output='{"tool": "search_records", "args": {"code": "HbA1c"}}',
                        parsed={"kind": "calls", "calls": [{"name": "search_records",
                                                            "args": {"resource_type": "Observation", "code": "HbA1c",
                                                                     "limit": 3}}],
                                "answer": None, "thinking": f"look up {NAME}", "error": None, "shape": "json"},
                        thinking=f"look up {NAME}", input_tokens=812, output_tokens=45, latency_s=1.25,
                        constrained=True),
        RouteRecord(run_id="", step=1, source="plan", target="act", reason="search_records"),
        ToolCallRecord(run_id="", step=1, name="find_patient",
                       args={"name": NAME, "birth_date": BIRTH, "identifier": MRN},
                       result_text=f"1 patient(s) found:\n| pat-1 | {NAME} | {BIRTH} | {MRN} |",
                       resource_ids=["Patient/pat-1"], latency_s=0.02),
        ToolCallRecord(run_id="", step=1, name="search_records",
                       args={"resource_type": "Observation", "code": "HbA1c", "limit": 3,
                             "filters": {"value-quantity": "gt9.4"}},
                       result_text=f"Observation: 2 found, newest first\n| 2024-05-02 | {HBA1C} |\n"
                                   "| 2023-11-20 | HbA1c 8.1 % |\n| 2023-05-01 | HbA1c 7.9 % |",
                       resource_ids=["Observation/obs-2", "Observation/obs-1"], latency_s=0.05,
                       error=f"ValueError: bad date {BIRTH}" if tool_error else None),
        RouteRecord(run_id="", step=1, source="act", target="plan"),
        ModelCallRecord(run_id="", step=2, prompt_sha256="ef" * 32,
                        raw_output=f'{{"answer": "{NAME}\'s last {HBA1C} (Observation/obs-2)."}}',
                        parsed={"kind": "answer", "calls": [], "answer": f"Last {HBA1C} (Observation/obs-2).",
                                "shape": "json"},
                        input_tokens=1020, output_tokens=30, latency_s=0.9, constrained=True),
        RouteRecord(run_id="", step=2, source="plan", target="answer", reason="final answer"),
        RunEnd(run_id="", status="completed", answer=f"{NAME}'s last {HBA1C} on 2024-05-02 (Observation/obs-2).",
               cited_ids=["Observation/obs-2"], steps=2, model_calls=2, tool_calls=2, input_tokens=1832,
               output_tokens=75, seconds=2.4),
    ]


def write_run(path, **kwargs) -> TraceWriter:
    with TraceWriter(path, **kwargs) as trace:
        for record in synthetic_run():
            trace.emit(record)
    return trace


def render(records) -> str:
    console = Console(record=True, width=100, color_system=None, file=io.StringIO())
    console.print(render_trace(records))
    return console.export_text()


# -- writer and reader ----------------------------------------------------------------------------

def test_each_record_is_on_disk_before_emit_returns(tmp_path):
    path = tmp_path / "trace.jsonl"
    with TraceWriter(path) as trace:
        for n, record in enumerate(synthetic_run(), 1):
            trace.emit(record)
            lines = path.read_bytes().splitlines()  # read while the writer is still open
            assert len(lines) == n
            assert orjson.loads(lines[-1])["type"] == record.type
    assert len(load_trace(path)) == len(synthetic_run())


def test_run_id_and_increasing_seq(tmp_path):
    trace = write_run(tmp_path / "t.jsonl", run_id="run-a")
    records = load_trace(tmp_path / "t.jsonl")
    assert {r.run_id for r in records} == {"run-a"} and trace.run_id == "run-a"
    assert [r.seq for r in records] == list(range(len(records)))
    assert isinstance(records[0], RunHeader) and isinstance(records[-1], RunEnd)


def test_run_id_is_adopted_from_the_first_record_or_made():
    trace = TraceWriter(None)
    trace.emit(RunHeader(run_id="from-header", question="q", model="embedded"))
    trace.emit(RouteRecord(run_id="", step=0, source="plan", target="act"))
    assert [r.run_id for r in trace.records] == ["from-header", "from-header"]
    made = TraceWriter(None)
    made.emit(RunHeader(run_id="", question="q", model="embedded"))
    assert len(made.records[0].run_id) == 12


def test_memory_only_writer_and_dict_records(tmp_path):
    trace = TraceWriter(None)
    written = trace.emit({"type": "run_header", "question": "q", "model": "embedded"})
    assert isinstance(written, RunHeader) and trace.records == [written]
    assert list(tmp_path.iterdir()) == []
    trace.close()
    with pytest.raises(ValueError, match="closed"):
        trace.emit(RunEnd(run_id="", status="completed"))


def test_several_runs_in_one_file(tmp_path):
    path = tmp_path / "many.jsonl"
    write_run(path, run_id="first")
    with TraceWriter(path) as trace:  # appends; one writer, two runs (a header starts a new one)
        for record in synthetic_run() + synthetic_run():
            trace.emit(record)
    grouped = runs(load_trace(path))
    assert len(grouped) == 3 and list(grouped)[0] == "first"
    for records in grouped.values():
        assert [r.seq for r in records] == list(range(len(synthetic_run())))
        assert isinstance(records[0], RunHeader) and isinstance(records[-1], RunEnd)


def test_malformed_line_names_its_number(tmp_path):
    path = tmp_path / "bad.jsonl"
    write_run(path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "", lines[1], '{"type": "model_call", "step": 1'] + lines[2:]) + "\n")
    with pytest.raises(ValueError, match=r"line 4\b"):
        load_trace(path)
    path.write_text("\n".join([lines[0], '{"type": "nonsense", "run_id": "x"}']) + "\n")
    with pytest.raises(ValueError, match=r"line 2\b.*nonsense"):
        load_trace(path)
    path.write_text("\n".join([lines[0], '{"type": "tool_call", "run_id": "x"}']) + "\n")
    with pytest.raises(ValueError, match=r"line 2\b"):
        load_trace(path)


def test_a_failing_exporter_does_not_stop_the_trace(tmp_path, caplog):
    seen = []

    def broken(record):
        raise RuntimeError("collector down")

    with TraceWriter(tmp_path / "t.jsonl", exporters=[broken, seen.append]) as trace:
        for record in synthetic_run():
            trace.emit(record)
    assert len(load_trace(tmp_path / "t.jsonl")) == len(seen) == len(synthetic_run())
    assert sum("failed" in m for m in caplog.messages) == 1


# -- redaction ------------------------------------------------------------------------------------

def test_redacted_file_holds_no_patient_content(tmp_path):
    path = tmp_path / "redacted.jsonl"
    with TraceWriter(path, redact=True) as trace:
        for record in synthetic_run(tool_error=True):
            trace.emit(record)
    text = path.read_text()
    for planted in PLANTED:
        assert planted not in text, planted
    original = synthetic_run(tool_error=True)
    header, model1, route1, find, search, route2, model2, route3, end = load_trace(path)
    assert header.redacted is True and header.patient_id == "pat-1" and header.prompts == original[0].prompts
    assert header.question == f"[redacted: {len(original[0].question)} chars, sha256:{_sha(original[0].question)}]"
    assert model1.prompt_messages is None and model1.prompt_sha256 == "cd" * 32
    raw = original[1].raw_output
    assert model1.raw_output == f"[redacted: {len(raw)} chars, sha256:{_sha(raw)}]"
    assert model1.thinking.startswith("[redacted: ") and (model1.input_tokens, model1.output_tokens) == (812, 45)
    assert model1.parsed["kind"] == "calls" and model1.parsed["calls"][0]["name"] == "search_records"
    assert model1.parsed["calls"][0]["args"] == {"resource_type": "Observation", "code": "[redacted: 5 chars]",
                                                 "limit": 3}
    assert len(model1.parsed["redacted"]["sha256"]) == 64
    assert find.args == {"name": f"[redacted: {len(NAME)} chars]", "birth_date": "[redacted: 10 chars]",
                         "identifier": f"[redacted: {len(MRN)} chars]"}
    assert find.result_text == f"[redacted: {len(original[3].result_text)} chars, 1 resources]"
    assert search.resource_ids == ["Observation/obs-2", "Observation/obs-1"]
    assert search.args["filters"] == {"value-quantity": "[redacted: 5 chars]"}
    assert search.error.startswith("ValueError: [redacted: ")
    assert route1.reason == "search_records" and route3.reason == "final answer"
    assert model2.parsed["answer"].startswith("[redacted: ")
    assert end.answer == f"[redacted: {len(original[-1].answer)} chars, sha256:{_sha(original[-1].answer)}]"
    assert end.cited_ids == ["Observation/obs-2"] and end.status == "completed" and end.input_tokens == 1832


def test_drop_ids_pseudonymises_consistently(tmp_path):
    path = tmp_path / "t.jsonl"
    write_run(path, redact=True, drop_ids=True)
    text = path.read_text()
    assert "obs-2" not in text and "pat-1" not in text
    records = load_trace(path)
    search, end = records[4], records[-1]
    assert search.resource_ids[0].startswith("Observation/redacted-")
    assert end.cited_ids == [search.resource_ids[0]]  # a citation still matches the result it came from


def test_redact_record_is_pure_and_idempotent():
    for record in synthetic_run(tool_error=True):
        before = record.model_dump()
        once = redact_record(record)
        assert record.model_dump() == before
        assert redact_record(once).model_dump() == once.model_dump()


def test_redact_args_keeps_names_enums_and_references():
    args = {"resource_type": "Observation", "code": "HbA1c", "status": "active,resolved", "sort": "-date",
            "limit": 5, "date_from": "2020-01", "value": 9.4, "reference": "Observation/obs-1", "unit": "%"}
    out = redact_args(args)
    assert list(out) == list(args)
    assert {k: out[k] for k in ("resource_type", "status", "sort", "limit", "reference")} == \
        {k: args[k] for k in ("resource_type", "status", "sort", "limit", "reference")}
    assert out["code"] == "[redacted: 5 chars]" and out["value"] == "[redacted: 3 chars]"
    assert out["date_from"] == "[redacted: 7 chars]" and out["unit"] == "[redacted: 1 chars]"
    assert redact_args({"resource_type": f"Observation {NAME}"})["resource_type"].startswith("[redacted")
    assert redact_args({"reference": "x"}, drop_ids=True)["reference"] == pseudonym("x")


# -- rendering and summary ------------------------------------------------------------------------

def test_render_trace_shows_the_run_without_escape_codes():
    trace = TraceWriter(None)
    for record in synthetic_run(tool_error=True):
        trace.emit(record)
    out = render(trace.records)
    assert "\x1b" not in out
    for expected in (f"What was {NAME}'s last HbA1c?", "find_patient(", "search_records(", "completed",
                     "on 2024-05-02 (Observation/obs-2)", "cited: Observation/obs-2", "max_steps=8",
                     "812 → 45 tok", "constrained", "ValueError: bad date", "↳ plan → act", "2 ids"):
        assert expected in out, expected
    assert "… 1 more line(s)" in out  # result shown by its first lines only


def test_render_keeps_brackets_and_flags_an_interrupted_run():
    records = synthetic_run()[:4]
    records[0] = records[0].model_copy(update={"question": "[bold]literal[/bold] question"})
    trace = TraceWriter(None)
    for record in records:
        trace.emit(record)
    out = render(trace.records)
    assert "[bold]literal[/bold] question" in out and "incomplete" in out
    assert "empty trace" in render([])


def test_render_redacted_trace(tmp_path):
    write_run(tmp_path / "t.jsonl", redact=True)
    out = render(load_trace(tmp_path / "t.jsonl"))
    assert "redacted" in out and "completed" in out and NAME not in out


def test_summarize_one_and_several_runs():
    trace = TraceWriter(None)
    for record in synthetic_run(tool_error=True):
        trace.emit(record)
    summary = summarize(trace.records)
    assert summary["status"] == "completed" and summary["steps"] == 2
    assert (summary["model_calls"], summary["tool_calls"]) == (2, 2)
    assert summary["tools"] == {"find_patient": 1, "search_records": 1}
    assert (summary["input_tokens"], summary["output_tokens"]) == (1832, 75)
    assert [e["tool"] for e in summary["errors"]] == ["search_records"]
    assert summary["cited_ids"] == ["Observation/obs-2"]
    orjson.dumps(summary)  # --json
    for record in synthetic_run()[:3]:
        trace.emit(record)
    both = summarize(trace.records)
    assert [s["status"] for s in both["runs"]] == ["completed", "incomplete"]
    assert both["total"]["runs"] == 2 and both["total"]["model_calls"] == 3
    assert both["total"]["statuses"] == {"completed": 1, "incomplete": 1}


# -- OpenTelemetry --------------------------------------------------------------------------------

@pytest.fixture
def spans():
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


def test_otel_spans_follow_the_genai_conventions(spans, tmp_path):
    from opentelemetry.trace import StatusCode

    from agent.trace.otel import OtelExporter

    provider, memory = spans
    records = synthetic_run(tool_error=True)
    records[0] = records[0].model_copy(update={"model": "openai:medgemma-27b@http://127.0.0.1:8000/v1"})
    with TraceWriter(tmp_path / "t.jsonl", run_id="r1", exporters=[OtelExporter(provider)]) as trace:
        for record in records:
            trace.emit(record)
    finished = memory.get_finished_spans()
    by_name = {}
    for span in finished:
        by_name.setdefault(span.name, []).append(span)
    assert sorted(by_name) == ["chat medgemma-27b", "execute_tool find_patient", "execute_tool search_records",
                               "medagent.run"]
    root = by_name["medagent.run"][0]
    assert root.attributes["medagent.run_id"] == "r1" and root.attributes["medagent.strategy"] == "react"
    assert root.attributes["medagent.status"] == "completed" and root.status.status_code == StatusCode.OK
    assert [e.name for e in root.events] == ["medagent.route"] * 3
    chat = by_name["chat medgemma-27b"]
    assert len(chat) == 2
    first = min(chat, key=lambda s: s.start_time)
    assert first.attributes["gen_ai.operation.name"] == "chat"
    assert first.attributes["gen_ai.provider.name"] == first.attributes["gen_ai.system"] == "openai"
    assert first.attributes["gen_ai.request.model"] == "medgemma-27b"
    assert (first.attributes["gen_ai.usage.input_tokens"], first.attributes["gen_ai.usage.output_tokens"]) == (812, 45)
    assert first.end_time - first.start_time == 1_250_000_000
    tool = by_name["execute_tool search_records"][0]
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.attributes["gen_ai.tool.name"] == "search_records"
    assert tool.status.status_code == StatusCode.ERROR and tool.attributes["error.type"] == "ValueError"
    assert by_name["execute_tool find_patient"][0].status.status_code == StatusCode.UNSET
    for span in finished:
        if span is not root:
            assert span.parent.span_id == root.context.span_id
            assert span.context.trace_id == root.context.trace_id
    assert NAME not in str([dict(s.attributes) for s in finished])


def test_otel_marks_failed_and_unfinished_runs(spans):
    from opentelemetry.trace import StatusCode

    from agent.trace.otel import OtelExporter

    provider, memory = spans
    exporter = OtelExporter(provider)
    trace = TraceWriter(None, exporters=[exporter])
    run = synthetic_run()
    for record in run[:-1] + [run[-1].model_copy(update={"status": "max_steps", "error": "step limit 8 reached"})]:
        trace.emit(record)
    for record in run[:3]:  # a second run that never ends
        trace.emit(record)
    trace.close()
    roots = [s for s in memory.get_finished_spans() if s.name == "medagent.run"]
    assert [r.attributes["medagent.status"] for r in roots] == ["max_steps", "incomplete"]
    assert all(r.status.status_code == StatusCode.ERROR for r in roots)


def test_otel_missing_gives_an_install_hint(monkeypatch):
    from agent.trace.otel import OtelExporter

    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ImportError, match=r"medagent\[otel\]"):
        OtelExporter()
