"""Reading a trace: ``render_trace`` draws each run as a tree, ``summarize`` counts it (``--json``).

Every piece of recorded text goes into a ``rich.text.Text`` (never into markup), so a model
output with square brackets or escape codes prints as it is; colour is left to the Console,
which drops it for ``NO_COLOR``, a dumb terminal or output that is not a terminal.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Iterable, Mapping

import orjson
from rich.console import Group, RenderableType
from rich.text import Text
from rich.tree import Tree

from .records import ModelCallRecord, RouteRecord, RunEnd, RunHeader, ToolCallRecord, TraceRecord
from .writer import runs

STATUS_STYLE = {"completed": "bold green", "max_steps": "bold yellow", "context_limit": "bold yellow",
                "invalid_action": "bold red", "tool_error": "bold red", "error": "bold red"}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_LONG_HASH = re.compile(r"(sha256:[0-9a-f]{12})[0-9a-f]{52}")   # redaction markers: 12 hex digits are enough to read


def render_trace(records: Iterable[TraceRecord], raw_chars: int = 160, result_lines: int = 3,
                 answer_lines: int = 8) -> RenderableType:
    """One tree per run: the header, each step as it happened, and the end."""
    grouped = runs(records)
    if not grouped:
        return Text("(empty trace)", style="dim")
    return Group(*(_run_tree(run_id, recs, raw_chars, result_lines, answer_lines) for run_id, recs in grouped.items()))


def _run_tree(run_id: str, records: list[TraceRecord], raw_chars: int, result_lines: int, answer_lines: int) -> Tree:
    header = next((r for r in records if isinstance(r, RunHeader)), None)
    title = Text.assemble(("run ", "bold"), (run_id or "?", "bold cyan"))
    if header is not None:
        title.append(f" · {header.strategy} · {_clean(header.model)}")
        if header.patient_id:
            title.append(f" · patient {_clean(header.patient_id)}")
        if header.redacted:
            title.append(" · redacted", style="magenta")
    tree = Tree(title, guide_style="dim")
    if header is not None:
        tree.add(Text.assemble(("question: ", "bold"), _clean(header.question)))
        settings = {**header.config, **({"now": header.now} if header.now else {}),
                    **({"seed": header.seed} if header.seed is not None else {})}
        if settings:
            tree.add(Text("config: " + " ".join(f"{k}={_value(v, 40)}" for k, v in settings.items()), style="dim"))
    else:
        tree.add(Text("no run_header (the trace starts mid-run)", style="yellow"))
    end = None
    for record in records:
        if isinstance(record, ModelCallRecord):
            _model_node(tree, record, raw_chars)
        elif isinstance(record, ToolCallRecord):
            _tool_node(tree, record, result_lines)
        elif isinstance(record, RouteRecord):
            reason = f"  ({_clean(record.reason)})" if record.reason else ""
            tree.add(Text(f"↳ {record.source} → {record.target}{reason}", style="dim"))
        elif isinstance(record, RunEnd):
            end = record
    _end_node(tree, end, records, answer_lines)
    return tree


def _model_node(tree: Tree, r: ModelCallRecord, raw_chars: int) -> None:
    label = Text.assemble(("model ", "bold blue"), f"step {r.step} · {r.node} · {r.latency_s:.2f} s · "
                          f"{r.input_tokens:,} → {r.output_tokens:,} tok")
    for flag in ("constrained", "repair"):
        if getattr(r, flag):
            label.append(f" · {flag}", style="yellow" if flag == "repair" else None)
    node = tree.add(label)
    parsed = r.parsed or {}
    if parsed.get("kind") == "calls":
        for call in parsed.get("calls") or []:
            if isinstance(call, Mapping):
                node.add(Text.assemble(("→ ", "green"), _call(call.get("name", "?"), call.get("args") or {})))
    elif parsed.get("kind") == "answer":
        node.add(Text.assemble(("→ answer: ", "green"), _short(str(parsed.get("answer") or ""), raw_chars)))
    elif parsed.get("kind") == "invalid":
        node.add(Text(f"invalid output: {_short(str(parsed.get('error') or ''), raw_chars)}", style="red"))
    if r.error:
        node.add(Text(f"error: {_short(r.error, raw_chars)}", style="bold red"))
    if r.thinking:
        node.add(Text(f"thinking: {_short(r.thinking, raw_chars)}", style="dim italic"))
    if r.raw_output:
        node.add(Text(f"raw: {_short(r.raw_output, raw_chars)}", style="dim"))


def _tool_node(tree: Tree, r: ToolCallRecord, result_lines: int) -> None:
    label = Text.assemble(("tool ", "bold magenta"), _call(r.name, r.args), f" · {r.latency_s:.2f} s")
    if r.resource_ids:
        label.append(f" · {len(r.resource_ids)} id{'s' if len(r.resource_ids) != 1 else ''}")
    if r.error:
        label.append(" · failed", style="bold red")
    node = tree.add(label)
    if r.error:
        node.add(Text(f"error: {_short(r.error, 200)}", style="bold red"))
    lines = [line for line in _clean(r.result_text).splitlines() if line.strip()]
    for line in lines[:result_lines]:
        node.add(Text(_short(line, 120)))
    if len(lines) > result_lines:
        node.add(Text(f"… {len(lines) - result_lines} more line(s)", style="dim"))


def _end_node(tree: Tree, end: RunEnd | None, records: list[TraceRecord], answer_lines: int) -> None:
    if end is None:
        tree.add(Text("incomplete: no run_end (the run was interrupted)", style="bold red"))
        return
    label = Text(end.status, style=STATUS_STYLE.get(end.status, "bold red"))
    label.append(f" · {end.steps} step(s) · {end.model_calls} model call(s) · {end.tool_calls} tool call(s)"
                 f" · {end.input_tokens:,} → {end.output_tokens:,} tok · {end.seconds:.2f} s")
    node = tree.add(label)
    if end.error:
        node.add(Text(f"error: {_short(end.error, 200)}", style="red"))
    lines = _clean(end.answer).splitlines() or [""]
    answer = node.add(Text.assemble(("answer: ", "bold"), lines[0]))
    for line in lines[1:answer_lines]:
        answer.add(Text(line))
    if len(lines) > answer_lines:
        answer.add(Text(f"… {len(lines) - answer_lines} more line(s)", style="dim"))
    if end.cited_ids:
        node.add(Text("cited: " + ", ".join(end.cited_ids), style="cyan"))


# -- summary --------------------------------------------------------------------------------------

def summarize(records: Iterable[TraceRecord]) -> dict[str, Any]:
    """Counts for ``--json``. One run: its summary. Several runs in the file:
    ``{"runs": [summary, ...], "total": {...}}``."""
    grouped = runs(records)
    summaries = [summarize_run(run_id, recs) for run_id, recs in grouped.items()]
    if len(summaries) == 1:
        return summaries[0]
    tools: Counter[str] = Counter()
    for s in summaries:
        tools.update(s["tools"])
    total = {"runs": len(summaries), "statuses": dict(Counter(s["status"] for s in summaries)),
             "steps": sum(s["steps"] for s in summaries), "model_calls": sum(s["model_calls"] for s in summaries),
             "tool_calls": sum(s["tool_calls"] for s in summaries), "tools": dict(tools),
             "input_tokens": sum(s["input_tokens"] for s in summaries),
             "output_tokens": sum(s["output_tokens"] for s in summaries),
             "errors": sum(len(s["errors"]) for s in summaries)}
    return {"runs": summaries, "total": total}


def summarize_run(run_id: str, records: list[TraceRecord]) -> dict[str, Any]:
    """One run's counts, taken from its step records (the run_end gives status, answer, seconds).
    A run without run_end has status ``incomplete``."""
    header = next((r for r in records if isinstance(r, RunHeader)), None)
    end = next((r for r in records if isinstance(r, RunEnd)), None)
    models = [r for r in records if isinstance(r, ModelCallRecord)]
    tools = [r for r in records if isinstance(r, ToolCallRecord)]
    errors = [{"seq": r.seq, "type": r.type, "step": r.step,
               **({"tool": r.name} if isinstance(r, ToolCallRecord) else {}), "error": r.error}
              for r in records if isinstance(r, (ModelCallRecord, ToolCallRecord)) and r.error]
    if end is not None and end.error:
        errors.append({"seq": end.seq, "type": end.type, "error": end.error})
    steps = [r.step for r in records if isinstance(r, (ModelCallRecord, ToolCallRecord, RouteRecord))]
    return {
        "run_id": run_id,
        "status": end.status if end else "incomplete",
        "question": header.question if header else None,
        "patient_id": header.patient_id if header else None,
        "model": header.model if header else None,
        "strategy": header.strategy if header else None,
        "redacted": header.redacted if header else None,
        "steps": end.steps if end else max(steps, default=0),
        "model_calls": len(models),
        "tool_calls": len(tools),
        "tools": dict(Counter(r.name for r in tools)),
        "input_tokens": sum(r.input_tokens for r in models),
        "output_tokens": sum(r.output_tokens for r in models),
        "repairs": sum(r.repair for r in models),
        "errors": errors,
        "answer": end.answer if end else None,
        "cited_ids": list(end.cited_ids) if end else [],
        "seconds": end.seconds if end else None,
    }


# -- text helpers ---------------------------------------------------------------------------------

def _clean(text: str | None) -> str:
    return _LONG_HASH.sub(r"\1…", _CONTROL.sub("", text or ""))


def _short(text: str, limit: int) -> str:
    flat = " ".join(_clean(text).split())
    return flat if len(flat) <= limit else flat[: max(1, limit - 1)] + "…"


def _value(value: Any, limit: int) -> str:
    if isinstance(value, str) and value.startswith("[redacted"):
        return _short(value, limit)
    text = orjson.dumps(value, default=str).decode()
    return _short(text, limit)


def _call(name: str, args: Mapping[str, Any]) -> str:
    return f"{_clean(name)}(" + ", ".join(f"{k}={_value(v, 60)}" for k, v in args.items() if v is not None) + ")"
