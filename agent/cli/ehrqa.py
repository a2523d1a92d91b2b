"""``medagent ehrqa``: the EHRQA-style evaluation (generate questions, score answers, run the oracle).

    medagent ehrqa generate --out questions.jsonl [--store URL] [--seed S] [--per-category N] [--patients ID ...]
    medagent qa questions.jsonl --out answers.jsonl --llm ...        (the QA pipeline answers them)
    medagent ehrqa score answers.jsonl --questions questions.jsonl [--json]
    medagent ehrqa oracle questions.jsonl --out oracle.jsonl          (the tools' ceiling)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from .common import ConfigOpt, FhirUrlOpt, StoreOpt, backend_from, err, fhir_errors, out, print_json, settings_from

app = typer.Typer(help="EHRQA-style evaluation: questions with golds computed from the records, a scorer, an oracle.",
                  no_args_is_help=True)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError) as exc:
        err.print(f"[red]error:[/red] cannot read {path}: {exc}")
        raise typer.Exit(2) from exc


@app.command()
def generate(
    out_file: Annotated[Path, typer.Option("--out", "-o", help="Questions JSONL to write.")],
    seed: Annotated[int, typer.Option(help="Random seed: the same seed and store give the same questions.")] = 0,
    per_category: Annotated[int, typer.Option(min=0, help="At most N questions per category (0 = all).")] = 20,
    patients: Annotated[Optional[list[str]], typer.Option("--patients", help="Only these patient ids (repeat, or comma-separated).")] = None,
    store: StoreOpt = None, fhir_url: FhirUrlOpt = None, config: ConfigOpt = None,
) -> None:
    """Questions with gold answers computed from the store's records (14 categories)."""
    from collections import Counter

    from evals.ehrqa.generate import generate as make, write_jsonl

    settings = settings_from(config, store=store, fhir_url=fhir_url)
    backend = backend_from(settings)
    ids = [p.strip() for item in patients or [] for p in item.split(",") if p.strip()]
    with fhir_errors():
        questions = make(backend, seed=seed, per_category=per_category or None, patient_ids=ids or None)
    n = write_jsonl(questions, out_file)
    counts = Counter(q.category for q in questions)
    err.print(f"{n} questions -> {out_file} ({', '.join(f'{c} {k}' for c, k in counts.items())})", highlight=False)


def _print_report(report: dict[str, Any], title: str) -> None:
    table = Table(title=title)
    for col, justify in (("category", "left"), ("questions", "right"), ("correct", "right"), ("accuracy", "right")):
        table.add_column(col, justify=justify)
    for cat, v in report["categories"].items():
        table.add_row(cat, str(v["n"]), str(v["correct"]), f"{100 * v['accuracy']:.1f}%")
    table.add_section()
    table.add_row("overall", str(report["n"]), str(report["correct"]), f"{100 * report['accuracy']:.1f}%", style="bold")
    out.print(table)
    pq = report["per_question"]
    out.print(f"per question: {pq.get('input_tokens', 0):.0f} input + {pq.get('output_tokens', 0):.0f} output tokens, "
              f"{pq.get('model_calls', 0):.2f} model calls, {pq.get('tool_calls', 0):.2f} tool calls, "
              f"{pq.get('seconds', 0):.2f} s", highlight=False)
    out.print("statuses: " + ", ".join(f"{s} {n}" for s, n in sorted(report["statuses"].items())), highlight=False)


@app.command()
def score(
    answers: Annotated[Path, typer.Argument(help="Answers JSONL (medagent qa or medagent ehrqa oracle wrote it).")],
    questions: Annotated[Path, typer.Option("--questions", "-q", help="The questions JSONL the answers are for.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
) -> None:
    """Accuracy by category and overall, tokens and model calls per question, statuses."""
    from evals.ehrqa.score import score_rows

    report = score_rows(_read_jsonl(questions), _read_jsonl(answers))
    if as_json:
        print_json(report)
    else:
        _print_report(report, f"EHRQA-style accuracy: {answers.name}")


@app.command()
def oracle(
    questions: Annotated[Path, typer.Argument(help="Questions JSONL (medagent ehrqa generate wrote it).")],
    out_file: Annotated[Path, typer.Option("--out", "-o", help="Answers JSONL to write (the same rows medagent qa writes).")],
    names: Annotated[bool, typer.Option("--names", help="Pass the questions' plain names as codes: measures name resolution too.")] = False,
    traces: Annotated[Optional[Path], typer.Option(help="Folder for one trace per question.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
    store: StoreOpt = None, fhir_url: FhirUrlOpt = None, config: ConfigOpt = None,
) -> None:
    """Play each question's ideal tool calls through the agent and answer from the tool text: the tools' ceiling."""
    from rich.progress import Progress

    from evals.ehrqa.generate import read_jsonl
    from evals.ehrqa.oracle import run_oracle
    from evals.ehrqa.score import score_rows

    settings = settings_from(config, store=store, fhir_url=fhir_url)
    backend = backend_from(settings)
    rows = read_jsonl(questions)
    if traces:
        traces.mkdir(parents=True, exist_ok=True)
    with open(out_file, "w", encoding="utf-8") as f, Progress(console=err, transient=True) as progress, fhir_errors():
        task = progress.add_task("oracle", total=len(rows))

        def write(_q, row):
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            f.flush()
            progress.advance(task)

        answers = run_oracle(backend, rows, traces=traces, names=names, on_row=write)
    report = score_rows([q.to_json() for q in rows], answers)
    if as_json:
        print_json(report)
    else:
        _print_report(report, f"EHRQA oracle{' (plain names)' if names else ''}: {questions.name}")
