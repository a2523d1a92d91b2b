"""An oracle planner for the EHRQA-style set: the ceiling of what the tools let a planner answer.

``IdealPlanner`` is a LangChain chat model that plays one question's ideal calls (at most two)
through the real agent graph (``run_question``), then answers from the LAST tool result's
text alone, read by its column names (tables.py). It never sees the gold: when it is wrong,
either the tools did not show the answer or the question is wrong, and the per-question
``note`` says which column or line it looked for.

A ``$prev.date`` argument is filled from the previous result's first row, the way a planner
reads the date of the BMI before asking for the weight measured that day.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any, Iterable

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

from .records import Question
from .tables import parse
from .vocab import words

RESULT_HEADER = re.compile(r"^TOOL RESULT \([\w_]+\):\n", re.M)
# The reference date as the agent states it: "(Today is 2020-01-01.)" or "Reference date (today): 2020-01-01".
_TODAY = re.compile(r"today\W{0,4}(?:is\W{1,2})?(\d{4}-\d{2}-\d{2})", re.I)
_BORN = re.compile(r"\bborn (\d{4}-\d{2}-\d{2})")


def _results(messages: list[BaseMessage]) -> list[str]:
    """The tool results the agent has shown so far, in order (text after each header)."""
    out = []
    for m in messages:
        text = m.text if isinstance(m.text, str) else str(m.content)
        if text.startswith("TOOL RESULT"):
            out += [part.strip() for part in RESULT_HEADER.split(text) if part.strip()]
    return out


def _question_text(messages: list[BaseMessage]) -> str:
    for m in reversed(messages):
        text = m.text if isinstance(m.text, str) else str(m.content)
        if text.startswith("Question: "):
            return text
    return ""


def answer_from(result: str, extract: dict[str, Any], question: str = "") -> str:
    """The answer a careful reader gives from one tool result (the oracle's only source)."""
    kind = extract.get("kind")
    if kind == "age":
        born, today = _BORN.search(result), _TODAY.search(question)
        if not born or not today:
            return "The tool result does not show the birth date (or the question no reference date)."
        b, d = date.fromisoformat(born.group(1)), date.fromisoformat(today.group(1))
        return f"{d.year - b.year - ((d.month, d.day) < (b.month, b.day))} years old (born {born.group(1)})"
    table = parse(result)
    if kind == "total":
        return f"{table.total} found" if table.total is not None else f"The tool result shows no count: {result[:80]}"
    if kind == "any_rows":
        if table.rows or (table.total or 0) > 0:
            row = table.rows[0] if table.rows else {}
            return f"Yes: {row.get('display', '')} {row.get('date', '')}".strip() + table.cite(row)
        return "No, the record holds none."
    rows = table.rows
    if kind == "first_where":
        target = words(extract.get("match", ""))
        rows = [r for r in rows if target and target <= words(r.get(extract["column"], ""))]
        column = extract.get("take", "display")
    else:
        column = extract.get("column", "value")
    if not rows:
        return f"The tool result shows no matching row (looked for column '{extract.get('column')}')."
    row = rows[0]
    if column not in row or not row[column]:
        return f"The tool result does not show column '{column}' (columns: {', '.join(table.columns)})."
    value = row[column]
    if column == "value":
        value = f"{value} {row.get('unit', '')}".strip() + (f" on {row['date']}" if row.get("date") else "")
    return value + table.cite(row)


def _fill(args: dict[str, Any], previous: str | None) -> dict[str, Any] | None:
    """Replace '$prev.<column>' with that column of the previous result's first row."""
    filled = {}
    for key, value in args.items():
        if isinstance(value, str) and value.startswith("$prev."):
            rows = parse(previous or "").rows
            column = value.split(".", 1)[1]
            if not rows or not rows[0].get(column):
                return None
            value = rows[0][column][:10] if column == "date" else rows[0][column]
        filled[key] = value
    return filled


class IdealPlanner(BaseChatModel):
    """Plays ``ideal`` calls one per turn, then answers by ``extract``. Tokens: characters / 4."""

    ideal: list[dict[str, Any]] = Field(default_factory=list)
    extract: dict[str, Any] = Field(default_factory=dict)
    #: Pass the question's plain name as ``code`` (where the call has one) instead of the
    #: codes: measures the tools' name resolution too, not only what they show.
    names: bool = False

    @property
    def _llm_type(self) -> str:
        return "medagent-ehrqa-oracle"

    def decide(self, messages: list[BaseMessage]) -> dict[str, Any]:
        results = _results(messages)
        if len(results) < len(self.ideal):
            call = self.ideal[len(results)]
            args = _fill(call.get("args", {}), results[-1] if results else None)
            if args is None:
                return {"answer": "The previous result did not show what the next search needs."}
            if self.names and call.get("name") and "code" in args:
                args["code"] = call["name"]
            return {"tool": call["tool"], "args": args}
        last = results[-1] if results else ""
        return {"answer": answer_from(last, self.extract, _question_text(messages))}

    def _generate(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        out = json.dumps(self.decide(messages), ensure_ascii=False)
        tokens_in = sum(len(m.text if isinstance(m.text, str) else str(m.content)) for m in messages) // 4
        message = AIMessage(content=out, usage_metadata={"input_tokens": tokens_in, "output_tokens": len(out) // 4,
                                                         "total_tokens": tokens_in + len(out) // 4})
        return ChatResult(generations=[ChatGeneration(message=message)])


def answer_row(q: Question, result: Any) -> dict[str, Any]:
    """The answers-file row (the same shape as ``medagent qa`` writes)."""
    return {"id": q.id, "answer": result.answer, "status": result.status, "cited_ids": result.cited_ids,
            "steps": result.steps, "model_calls": result.model_calls, "tool_calls": result.tool_calls,
            "input_tokens": result.input_tokens, "output_tokens": result.output_tokens,
            "seconds": result.seconds, "trace": result.trace_path}


def run_oracle(backend, questions: Iterable[Question], *, traces: Path | None = None, names: bool = False,
               on_row=None) -> list[dict[str, Any]]:
    """Each question through ``run_question`` with the ideal planner; answers rows back."""
    from agent.run import run_question

    rows = []
    for q in questions:
        model = IdealPlanner(ideal=q.ideal, extract=q.extract, names=names)
        trace = traces / f"{q.id}.jsonl" if traces else None
        try:
            result = run_question(q.question, backend=backend, patient_id=q.patient_id or None, model=model,
                                  model_label="ehrqa-oracle", now=q.now or None, trace_path=trace, examples=False)
            row = answer_row(q, result)
        except Exception as exc:  # e.g. an unbound session before run_question allows one
            row = {"id": q.id, "answer": "", "status": "error", "error": f"{type(exc).__name__}: {exc}",
                   "cited_ids": [], "steps": 0, "model_calls": 0, "tool_calls": 0, "input_tokens": 0,
                   "output_tokens": 0, "seconds": 0.0, "trace": None}
        rows.append(row)
        if on_row:
            on_row(q, row)
    return rows
