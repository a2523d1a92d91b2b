"""The EHR question-answering pipeline: a file of questions in, a file of answers out.

Input rows (JSONL or CSV): ``id``, ``patient_id`` (empty for patient-lookup questions, which
run in an unbound session), ``question``, optional ``now``. Output rows (JSONL, one per
question, flushed as each finishes): ``id``, ``patient_id``, ``question``, ``answer``,
``status``, ``cited_ids``, ``steps``, ``model_calls``, ``tool_calls``, ``input_tokens``,
``output_tokens``, ``seconds``, ``trace``, ``error``.

The model and the record backend are loaded once per run (``QaRunner``). Re-running with the
same output file skips the ids already answered. A bad row (no id, no question, a duplicate
id, an unknown patient) gets a status of its own in the output and the run goes on.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import orjson
from langchain_core.language_models import BaseChatModel

from agent.batch import ResultsFile, run_pool
from agent.run import Strategy, run_question
from tools.fhir.backend import FhirBackend

#: Statuses a row can end with besides the agent's own (completed, max_steps, ...).
BAD_ROW = "bad_row"
UNKNOWN_PATIENT = "unknown_patient"
QUESTION_FIELDS = ("id", "patient_id", "question", "now")


class QuestionFileError(ValueError):
    """The questions file cannot be read at all (missing, not JSONL/CSV)."""


def read_questions(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL or CSV questions file. A line that is not a JSON object is kept as a
    row with ``_error`` so the output says what was wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise QuestionFileError(f"{path} does not exist")
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or "question" not in reader.fieldnames:
                raise QuestionFileError(f"{path}: a CSV questions file needs a header with at least 'id' and 'question'")
            return [{k: (v or "").strip() for k, v in row.items() if k} for row in reader]
    rows: list[dict[str, Any]] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            rows.append({"id": f"line-{n}", "_error": f"line {n} is not JSON: {exc}"})
            continue
        rows.append(row if isinstance(row, dict) else {"id": f"line-{n}", "_error": f"line {n} is not a JSON object"})
    return rows


def problem_with(row: dict[str, Any]) -> str | None:
    """Why a row cannot be run, or None."""
    if row.get("_error"):
        return str(row["_error"])
    if not str(row.get("id") or "").strip():
        return "the row has no id"
    if not str(row.get("question") or "").strip():
        return "the row has no question"
    return None


def _trace_name(row_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", row_id)[:120] + ".jsonl"


@dataclass
class QaRunner:
    """Everything a run loads once and shares across its questions."""
    backend: FhirBackend
    model: BaseChatModel
    model_label: str
    strategy: Strategy = "react"
    traces_dir: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)   # run_question keywords: now, max_steps, examples...

    def answer(self, row: dict[str, Any]) -> dict[str, Any]:
        """Answer one row; never raises for a bad row, a model or a tool failure."""
        out = {k: row.get(k) for k in QUESTION_FIELDS}
        out["id"] = str(row.get("id") or "")
        problem = problem_with(row)
        if problem:
            return {**out, **_empty(BAD_ROW, problem)}
        trace = self.traces_dir / _trace_name(out["id"]) if self.traces_dir else None
        options = dict(self.options)
        if row.get("now"):
            options["now"] = str(row["now"])
        try:
            result = run_question(str(row["question"]), backend=self.backend,
                                  patient_id=str(row.get("patient_id") or "").strip() or None,
                                  model=self.model, model_label=self.model_label, strategy=self.strategy,
                                  trace_path=trace, **options)
        except LookupError as exc:
            return {**out, **_empty(UNKNOWN_PATIENT, str(exc))}
        return {**out, "answer": result.answer, "status": result.status, "cited_ids": result.cited_ids,
                "steps": result.steps, "model_calls": result.model_calls, "tool_calls": result.tool_calls,
                "input_tokens": result.input_tokens, "output_tokens": result.output_tokens,
                "seconds": result.seconds, "trace": result.trace_path, "error": result.error}


def _empty(status: str, error: str) -> dict[str, Any]:
    return {"answer": "", "status": status, "cited_ids": [], "steps": 0, "model_calls": 0, "tool_calls": 0,
            "input_tokens": 0, "output_tokens": 0, "seconds": 0.0, "trace": None, "error": error}


@dataclass
class QaSummary:
    total: int                 # rows in the questions file
    skipped: int               # already answered in the output file (resumed)
    answered: int              # answered by this run
    statuses: Counter = field(default_factory=Counter)   # over every row in the output file
    input_tokens: int = 0
    output_tokens: int = 0
    model_calls: int = 0
    seconds: float = 0.0

    def per_question(self, value: float) -> float:
        n = sum(self.statuses.values())
        return value / n if n else 0.0


def run_qa(rows: Iterable[dict[str, Any]], out: Path, runner: QaRunner, *, concurrency: int = 1,
           console=None, show_progress: bool = True) -> QaSummary:
    """Answer every row not already in ``out``; each answer is written as it completes."""
    rows = list(rows)
    results = ResultsFile(out)
    seen: set[str] = set()
    todo = []
    for n, row in enumerate(rows, 1):
        rid = str(row.get("id") or "")
        if rid in seen:  # a second row with an id already used: reported, not run
            row = {**row, "_error": f"duplicate id {rid!r} (row {n})", "id": f"{rid}#dup{n}"}
            rid = row["id"]
        if rid and rid in results:
            seen.add(rid)
            continue
        seen.add(rid)
        todo.append(row)
    skipped = len(rows) - len(todo)
    answered = run_pool(todo, runner.answer, concurrency=concurrency, on_result=lambda _row, res: results.write(res),
                        description="answering", console=console, show_progress=show_progress)
    ids = {str(r.get("id") or "") for r in rows}
    finished = [r for k, r in results.done.items() if k in ids or "#dup" in k]
    return QaSummary(total=len(rows), skipped=skipped, answered=answered,
                     statuses=Counter(r.get("status", "?") for r in finished),
                     input_tokens=sum(r.get("input_tokens") or 0 for r in finished),
                     output_tokens=sum(r.get("output_tokens") or 0 for r in finished),
                     model_calls=sum(r.get("model_calls") or 0 for r in finished),
                     seconds=sum(r.get("seconds") or 0.0 for r in finished))
