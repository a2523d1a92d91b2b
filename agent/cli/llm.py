"""``medagent llm ...``: check a model backend, and read a raw model output as the parser does."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from .common import ConfigOpt, err, out, print_json, settings_from

app = typer.Typer(help="Check a planner model backend; parse raw model outputs.", no_args_is_help=True)

LlmOpt = Annotated[Optional[str], typer.Option("--llm", help="embedded, embedded:NAME (qwen2.5-coder-1.5b, qwen2.5-coder-0.5b, gemma3-270m), openai:MODEL@http://host:port/v1, hf:/path/to/model or scripted:FILE. Env: MEDAGENT_LLM.", show_default=False)]


def tool_schemas_for_planner() -> list[dict]:
    from agent.protocol.schema import tool_schemas
    from tools.ehr import EhrSession

    return tool_schemas(EhrSession(backend=None).tools())  # the schemas need the signatures only


@app.command()
def check(
    llm: LlmOpt = None,
    questions: Annotated[int, typer.Option(help="How many planning prompts to run (of the 50 in evals/data).")] = 6,
    constrained: Annotated[Optional[bool], typer.Option("--constrained/--unconstrained", help="JSON-schema decoding where the backend can.", show_default="on")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Is the backend reachable, how fast is it, and how often are its tool calls schema-valid?"""
    from agent.models import ModelSpecError, parse_spec
    from agent.models.factory import build_chat_model
    from evals.planning import load_questions, run_planning_eval

    settings = settings_from(config, llm=llm, constrained=constrained)
    try:
        spec = parse_spec(settings.llm)
    except ModelSpecError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    report: dict = {"llm": str(spec), "reachable": False}
    if spec.kind == "openai":
        from agent.models.openai_compat import check_server

        try:
            report["server"] = check_server(spec.base_url, timeout=min(settings.llm_timeout, 10))
        except Exception as exc:
            return _fail(report, f"{exc}", as_json)
    # Pick questions across categories so a short check still covers the record types.
    pool = load_questions()
    picked, seen = [], set()
    for q in pool:
        if q.category not in seen:
            picked.append(q)
            seen.add(q.category)
    picked = (picked + [q for q in pool if q not in picked])[:max(1, questions)]
    try:
        start = time.perf_counter()
        model = build_chat_model(spec, settings)
        progress = (lambda t: err.print(f"  {t.id} {t.status:14s} {t.tool or '-':16s} {t.latency_s:6.1f} s")) if not as_json else None
        result = run_planning_eval(model, tool_schemas_for_planner(), picked, model_label=str(spec),
                                   constrained=settings.constrained, thinking=settings.thinking,
                                   examples=settings.examples, on_turn=progress)
    except Exception as exc:
        return _fail(report, f"{type(exc).__name__}: {exc}", as_json)
    summary = result.summary()
    reachable = summary["statuses"].get("model_error", 0) < summary["questions"]
    report.update(reachable=reachable, wall_s=round(time.perf_counter() - start, 1), **summary)
    if as_json:
        print_json({**report, "turns": result.to_json()["turns"]})
    else:
        table = Table(title=f"medagent llm check: {spec}", show_header=False, show_edge=False)
        for key in ("reachable", "constrained", "questions", "schema_valid_rate", "right_tool_rate",
                    "right_tool_and_type_rate", "repaired", "statuses", "mean_input_tokens", "mean_output_tokens",
                    "mean_latency_s", "tokens_per_s", "wall_s"):
            table.add_row(key, str(report[key]))
        out.print(table)
    if not reachable:
        raise typer.Exit(3)


def _fail(report: dict, message: str, as_json: bool) -> None:
    report["error"] = message
    if as_json:
        print_json(report)
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(3)


@app.command()
def parse(
    source: Annotated[str, typer.Argument(help="A file with one raw model output, or - for standard input.")] = "-",
) -> None:
    """Print, as JSON, the tool calls or final answer the parser reads from a raw model output."""
    from agent.planning import read_output

    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    schemas = tool_schemas_for_planner()
    parsed, error = read_output(text, schemas)
    print_json({**parsed.model_dump(), "valid": error is None, "problems": error})
    if error is not None:
        raise typer.Exit(1)
