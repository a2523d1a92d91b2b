"""Re-run a traced run with its recorded model outputs and check the same thing happens.

The recorded outputs stand in for the model (``ScriptedChatModel``); the tools run for real
against the given backend. The run matches when it makes the same tool calls, in order, and
gives the same answer with the same status. A redacted trace cannot be replayed (its
outputs are gone), and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.models.scripted import ScriptedChatModel
from agent.run import RunResult, run_question
from agent.trace.records import ModelCallRecord, RunEnd, RunHeader, ToolCallRecord
from agent.trace.writer import load_trace, runs
from tools.fhir.backend import FhirBackend


@dataclass
class ReplayReport:
    run_id: str
    matches: bool
    differences: list[str] = field(default_factory=list)
    original: dict[str, Any] = field(default_factory=dict)
    replayed: dict[str, Any] = field(default_factory=dict)


def _calls(records) -> list[tuple[str, dict]]:
    return [(r.name, r.args) for r in records if isinstance(r, ToolCallRecord)]


def replay_trace(path: Path, backend: FhirBackend, run_id: str | None = None) -> ReplayReport:
    by_run = runs(load_trace(path))
    if not by_run:
        raise ValueError(f"{path} holds no run")
    run_id = run_id or list(by_run)[-1]
    if run_id not in by_run:
        raise ValueError(f"{path} has no run {run_id} (runs: {', '.join(by_run)})")
    records = by_run[run_id]
    header = next((r for r in records if isinstance(r, RunHeader)), None)
    end = next((r for r in records if isinstance(r, RunEnd)), None)
    if header is None or end is None:
        raise ValueError(f"run {run_id} in {path} is incomplete (no header or no end record)")
    if header.redacted:
        raise ValueError(f"run {run_id} was traced with --redact: its model outputs are not kept, so it cannot be replayed")
    # Every output the model gave, bad ones included (they drove repair turns); a call that
    # failed in the backend gave none, and the script running out reproduces that failure.
    outputs = [{"output": r.raw_output, "input_tokens": r.input_tokens, "output_tokens": r.output_tokens}
               for r in records if isinstance(r, ModelCallRecord) and (r.raw_output or r.error is None)]
    model = ScriptedChatModel(outputs=outputs)
    cfg = header.config
    replayed: list = []
    result: RunResult = run_question(
        header.question, backend=backend, patient_id=header.patient_id or "", model=model,
        model_label=f"replay:{header.model}", strategy=cfg.get("strategy", header.strategy), now=header.now,
        max_steps=cfg.get("max_steps", 8), max_tokens=cfg.get("max_tokens", 60_000),
        constrained=cfg.get("constrained", True), thinking=cfg.get("thinking", False),
        narrow=cfg.get("narrow", False), examples=cfg.get("examples", True), exporters=[replayed.append])
    replayed_calls = _calls(replayed)
    original_calls = _calls(records)
    differences = []
    if replayed_calls != original_calls:
        differences.append(f"tool calls differ: recorded {original_calls}, replayed {replayed_calls}")
    if result.answer != end.answer:
        differences.append(f"answer differs: recorded {end.answer!r}, replayed {result.answer!r}")
    if result.status != end.status:
        differences.append(f"status differs: recorded {end.status}, replayed {result.status}")
    return ReplayReport(run_id, not differences, differences,
                        {"status": end.status, "answer": end.answer, "tool_calls": len(original_calls)},
                        {"status": result.status, "answer": result.answer, "tool_calls": len(replayed_calls)})
