"""``medagent bench ...``: benchmark runs into a resumable run folder, their reports, comparisons.

    medagent bench ehrqa [--questions FILE] [--store URL] [--per-category N]
    medagent bench medagentbench [--tasks FILE|generated] [--fhir-url URL] [--store URL] [--mode protocol|agent]
    medagent bench agentclinic [--cases FILE] [--patient-llm SPEC|case] [--measurement-llm SPEC|deterministic]
                               [--judge-llm SPEC|none] [--max-turns N]
    (each: [--llm SPEC] [--strategy S] [--limit N] [--concurrency N] [--out DIR] [--seed S])
    medagent bench show DIR
    medagent bench compare DIR_A DIR_B [--out DIR]

The evals package is imported inside the commands (the CLI is the outer layer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer

from .common import ConfigOpt, FhirUrlOpt, StoreOpt, backend_from, err, out, settings_from
from .llm import LlmOpt

app = typer.Typer(help="Benchmark runs (EHRQA, MedAgentBench, AgentClinic): run folders, reports, comparisons.",
                  no_args_is_help=True)

StrategyOpt = Annotated[Literal["react", "navigator"], typer.Option(help="The agent's strategy.")]
LimitOpt = Annotated[Optional[int], typer.Option(help="Run only the first N cases (in the benchmark's order).", min=1)]
ConcurrencyOpt = Annotated[int, typer.Option(help="Cases at once; served models (openai:) only, in-process models run one at a time.", min=1)]
OutOpt = Annotated[Optional[Path], typer.Option("--out", help="Run folder (default benchmarks/out/bench/NAME-MODEL-STRATEGY). Re-running resumes it.", show_default=False)]
SeedOpt = Annotated[int, typer.Option(help="Seed for generated cases and anything random, recorded in run.json.")]
MaxStepsOpt = Annotated[int, typer.Option(help="Agent turns per case before status max_steps.")]
EXIT_MISMATCH = 2
EXIT_INTERRUPTED = 130


def _model(spec_text: str, settings: Any) -> tuple[Any, str]:
    from agent.models import ModelSpecError, parse_spec
    from agent.models.factory import build_chat_model

    try:
        spec = parse_spec(spec_text)
        return build_chat_model(spec, settings), str(spec)
    except (ModelSpecError, FileNotFoundError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _run(bench: Any, *, model: Any, label: str, backend: Any, strategy: str, limit: int | None, concurrency: int,
         out_dir: Path | None, seed: int, options: dict[str, Any], roles: dict[str, str] | None = None) -> None:
    from evals.bench.runner import RunMismatch, RunOptions, run_benchmark

    opts = RunOptions(model_label=label, strategy=strategy, out=out_dir, limit=limit, concurrency=concurrency,
                      seed=seed, options=options, roles=roles or {})
    try:
        run_benchmark(bench, model=model, backend=backend, opts=opts, console=err)
    except RunMismatch as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_MISMATCH) from exc
    except KeyboardInterrupt as exc:
        raise typer.Exit(EXIT_INTERRUPTED) from exc


@app.command()
def ehrqa(
    llm: LlmOpt = None, strategy: StrategyOpt = "react", limit: LimitOpt = None, concurrency: ConcurrencyOpt = 1,
    out_dir: OutOpt = None, seed: SeedOpt = 0, max_steps: MaxStepsOpt = 8,
    questions: Annotated[Optional[Path], typer.Option(help="A questions JSONL file (evals.ehrqa.generate writes one); default: generate from the store.", show_default=False)] = None,
    per_category: Annotated[Optional[int], typer.Option(help="Generated questions per category (default: the generator's).", min=1)] = None,
    store: StoreOpt = None, fhir_url: FhirUrlOpt = None, config: ConfigOpt = None,
) -> None:
    """EHRQA-style questions over the loaded records, answered by the agent through its tools."""
    from evals.bench.ehrqa import EhrqaBenchmark

    settings = settings_from(config, store=store, fhir_url=fhir_url, llm=llm)
    model, label = _model(settings.llm, settings)
    backend = backend_from(settings)
    bench = EhrqaBenchmark(backend, questions_file=questions, per_category=per_category, seed=seed,
                           store_label=settings.fhir_url or settings.store, max_steps=max_steps,
                           constrained=settings.constrained, examples=settings.examples)
    _run(bench, model=model, label=label, backend=backend, strategy=strategy, limit=limit, concurrency=concurrency,
         out_dir=out_dir, seed=seed, options={"questions": str(questions) if questions else "generated",
                                              "per_category": per_category, "max_steps": max_steps})


@app.command()
def medagentbench(
    llm: LlmOpt = None, strategy: StrategyOpt = "react", limit: LimitOpt = None, concurrency: ConcurrencyOpt = 1,
    out_dir: OutOpt = None, seed: SeedOpt = 0,
    tasks: Annotated[str, typer.Option(help="Their task file (test_data_v2.json format), or 'generated' (tasks of the ten kinds over the store).")] = "generated",
    mode: Annotated[Literal["protocol", "agent"], typer.Option(help="protocol: their prompt and GET/POST/FINISH (comparable to the paper); agent: our agent and tools.")] = "protocol",
    per_kind: Annotated[Optional[int], typer.Option(help="Generated tasks per kind (default: enough for --limit, else 5).", min=1)] = None,
    store: StoreOpt = None, fhir_url: FhirUrlOpt = None, config: ConfigOpt = None,
) -> None:
    """MedAgentBench-compatible tasks (evals/medagentbench), against a FHIR server by URL or our store."""
    import evals.medagentbench as medagentbench_module   # their module: make_benchmark(...) -> Benchmark

    settings = settings_from(config, store=store, fhir_url=fhir_url, llm=llm)
    model, label = _model(settings.llm, settings)
    backend = backend_from(settings)
    try:
        bench = medagentbench_module.make_benchmark(tasks=tasks, fhir_url=settings.fhir_url,
                                                    store=None if settings.fhir_url else settings.store, mode=mode,
                                                    seed=seed, limit=limit, backend=backend, per_kind=per_kind)
    except (ValueError, FileNotFoundError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    _run(bench, model=model, label=label, backend=backend, strategy=strategy if mode == "agent" else "protocol",
         limit=limit, concurrency=concurrency, out_dir=out_dir, seed=seed,
         options={"tasks": tasks, "mode": mode, "fhir_url": settings.fhir_url, "per_kind": per_kind})


@app.command()
def agentclinic(
    llm: LlmOpt = None, limit: LimitOpt = None, concurrency: ConcurrencyOpt = 1, out_dir: OutOpt = None,
    seed: SeedOpt = 0,
    cases: Annotated[Optional[Path], typer.Option(help="AgentClinic case file (JSONL of OSCE_Examination objects); default: the shared AgentClinic-MedQA file.", show_default=False)] = None,
    patient_llm: Annotated[Optional[str], typer.Option(help="Patient agent: a model spec, or 'case' (deterministic: the case's own sentences). Default: the --llm model.", show_default=False)] = None,
    measurement_llm: Annotated[str, typer.Option(help="Measurement agent: 'deterministic' (looks results up in the case) or a model spec.")] = "deterministic",
    judge_llm: Annotated[Optional[str], typer.Option(help="Moderator LLM beside the string match: a model spec or 'none'. Default: the --llm model.", show_default=False)] = None,
    max_turns: Annotated[int, typer.Option(help="Doctor turns before the consultation ends (AgentClinic: 20).", min=1)] = 20,
    config: ConfigOpt = None,
) -> None:
    """AgentClinic-style consultations: the agent is the doctor (ask_patient, request_test) and ends with a diagnosis."""
    from evals.agentclinic import AgentClinicBenchmark

    settings = settings_from(config, llm=llm)
    model, label = _model(settings.llm, settings)
    loaded = {label: model}

    def role(spec: str | None, none_words: tuple[str, ...]) -> tuple[Any, str]:
        spec = label if spec is None else spec
        if spec.lower() in none_words:
            return None, spec.lower()
        role_model, role_label = _model(spec, settings) if spec not in loaded else (loaded[spec], spec)
        loaded.setdefault(role_label, role_model)   # one model object per spec: loaded once per run
        return role_model, role_label

    patient_model, patient_label = role(patient_llm, ("case", "deterministic"))
    measurement_model, measurement_label = role(measurement_llm, ("deterministic", "case"))
    judge_model, judge_label = role(judge_llm, ("none", "string"))
    bench = AgentClinicBenchmark(cases, patient_model=patient_model, patient_label=patient_label,
                                 measurement_model=measurement_model, measurement_label=measurement_label,
                                 judge_model=judge_model, judge_label=judge_label, max_turns=max_turns,
                                 constrained=settings.constrained, examples=settings.examples)
    _run(bench, model=model, label=label, backend=None, strategy="doctor", limit=limit, concurrency=concurrency,
         out_dir=out_dir, seed=seed, roles={"doctor": label},
         options={"cases": str(cases) if cases else "default", "max_turns": max_turns})


@app.command()
def show(run_dir: Annotated[Path, typer.Argument(help="A run folder (holds results.jsonl and run.json).")]) -> None:
    """Re-render a run's report (report.md, report.html) from results.jsonl and run.json."""
    from evals.bench.report import load_run, title_of, write_reports
    from evals.bench.runner import summary_table

    try:
        config, rows = load_run(run_dir)
    except FileNotFoundError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    md, html = write_reports(run_dir)
    out.print(summary_table(rows, title=title_of(config)))
    err.print(f"report: {md}\n        {html}")


@app.command()
def compare(
    dir_a: Annotated[Path, typer.Argument(help="Run folder A.")],
    dir_b: Annotated[Path, typer.Argument(help="Run folder B.")],
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Where compare.md/.html go (default: beside B).", show_default=False)] = None,
) -> None:
    """Two runs side by side: per-category accuracy, differences, and an exact McNemar test on shared cases."""
    from rich.table import Table

    from evals.bench.compare import HEADER, compare_runs, default_compare_dir, paired_rows, rows_for_table, write_compare

    try:
        result = compare_runs(dir_a, dir_b)
    except FileNotFoundError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    table = Table(title=f"A = {result['a']['label']}\nB = {result['b']['label']}", title_justify="left")
    for i, col in enumerate(HEADER):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows_for_table(result):
        table.add_row(*row, style="bold" if row[0] == "overall" else None)
    out.print(table)
    paired = Table(title="paired (shared cases)", title_justify="left", show_header=False)
    for k, v in paired_rows(result["paired"]):
        paired.add_row(k, v)
    out.print(paired)
    for warning in result["warnings"]:
        err.print(f"[yellow]warning:[/yellow] {warning}")
    md, html = write_compare(result, out_dir or default_compare_dir(dir_a, dir_b))
    err.print(f"compare report: {md}\n                {html}")
