"""``medagent qa``: answer a file of questions about patients' records, resumably."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from rich.table import Table

from .common import (ConfigOpt, FhirUrlOpt, StoreOpt, backend_from, err, fhir_errors, model_from, print_json,
                     settings_from)
from .llm import LlmOpt


def qa(
    questions: Annotated[Path, typer.Argument(help="Questions, JSONL or CSV: id, patient_id (empty: a lookup question), question, now (optional).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Answers, JSONL, one row per question, written as each finishes. Re-running with the same file resumes.")],
    llm: LlmOpt = None,
    strategy: Annotated[Literal["react", "navigator"], typer.Option(help="react or navigator (lookup questions always run react).")] = "react",
    concurrency: Annotated[int, typer.Option(min=1, help="Questions in flight at once, for a served model (openai:...); in-process models run one at a time.")] = 4,
    traces: Annotated[Optional[Path], typer.Option(help="Folder for one trace per question. Default: <out>.traces/ beside the answers.")] = None,
    now: Annotated[Optional[str], typer.Option(help="Reference date for rows that give none (ISO).")] = None,
    max_steps: Annotated[int, typer.Option(help="Model turns per question before status max_steps.")] = 8,
    max_tokens: Annotated[int, typer.Option(help="Tokens per question before status context_limit.")] = 60_000,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Only the first N questions.")] = None,
    redact: Annotated[bool, typer.Option("--redact", help="Keep patient content out of the traces.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
    store: StoreOpt = None, fhir_url: FhirUrlOpt = None, config: ConfigOpt = None,
) -> None:
    """Answer every question in a file; the model and the record are loaded once."""
    from agent.qa import QaRunner, QuestionFileError, read_questions, run_qa

    settings = settings_from(config, store=store, fhir_url=fhir_url, llm=llm)
    try:
        rows = read_questions(questions)
    except QuestionFileError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    rows = rows[:limit] if limit else rows
    spec, model = model_from(settings)
    if concurrency > 1 and spec.kind != "openai":
        err.print(f"{spec.kind} models run in this process: one question at a time", highlight=False)
        concurrency = 1
    backend = backend_from(settings)
    traces_dir = traces or out.with_name(out.name + ".traces")
    traces_dir.mkdir(parents=True, exist_ok=True)
    runner = QaRunner(backend=backend, model=model, model_label=str(spec), strategy=strategy, traces_dir=traces_dir,
                      options={"now": now, "max_steps": max_steps, "max_tokens": max_tokens, "redact": redact,
                               "constrained": settings.constrained, "thinking": settings.thinking,
                               "examples": settings.examples})
    with fhir_errors():
        try:
            summary = run_qa(rows, out, runner, concurrency=concurrency, console=err)
        except KeyboardInterrupt:
            err.print(f"\ninterrupted: the answers finished so far are in {out}; run the same command to resume")
            raise typer.Exit(130) from None
    n = sum(summary.statuses.values())
    data = {"questions": summary.total, "answered_now": summary.answered, "resumed": summary.skipped,
            "statuses": dict(summary.statuses), "model_calls_per_q": round(summary.per_question(summary.model_calls), 2),
            "input_tokens_per_q": round(summary.per_question(summary.input_tokens)),
            "output_tokens_per_q": round(summary.per_question(summary.output_tokens)),
            "seconds_per_q": round(summary.per_question(summary.seconds), 2), "answers": str(out),
            "traces": str(traces_dir)}
    if as_json:
        print_json(data)
        return
    table = Table(title=f"{n} answers in {out}", show_header=False)
    table.add_row("this run", f"{summary.answered} answered, {summary.skipped} already done")
    table.add_row("statuses", ", ".join(f"{k} {v}" for k, v in summary.statuses.most_common()))
    table.add_row("per question", f"{data['model_calls_per_q']} model calls, {data['input_tokens_per_q']:,} -> "
                  f"{data['output_tokens_per_q']:,} tokens, {data['seconds_per_q']} s")
    table.add_row("traces", str(traces_dir))
    err.print(table)
