"""``medagent trace show|replay``: read a trace as a tree; re-run it with its recorded outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import ConfigOpt, EXIT_REFUSED, FhirUrlOpt, StoreOpt, backend_from, err, fhir_errors, out, print_json, settings_from

app = typer.Typer(help="Show a run's trace, or replay it and check the same calls and answer come out.",
                  no_args_is_help=True)
TraceArg = Annotated[Path, typer.Argument(help="A trace file (JSONL) written by medagent ask --trace.", exists=True, dir_okay=False)]


@app.command()
def show(trace: TraceArg, as_json: Annotated[bool, typer.Option("--json", help="Print a summary as JSON.")] = False) -> None:
    """Render the trace as a readable tree (one per run in the file)."""
    from agent.trace import load_trace, render_trace, summarize

    try:
        records = load_trace(trace)
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_REFUSED) from exc
    if as_json:
        print_json(summarize(records))
    else:
        out.print(render_trace(records))


@app.command()
def replay(trace: TraceArg, run_id: Annotated[Optional[str], typer.Option(help="Which run in the file (default: the last).")] = None,
           store: StoreOpt = None, fhir_url: FhirUrlOpt = None, config: ConfigOpt = None,
           as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Re-run with the recorded model outputs against the record; exit 1 if anything differs."""
    from agent.replay import replay_trace

    settings = settings_from(config, store=store, fhir_url=fhir_url)
    with fhir_errors():
        try:
            report = replay_trace(trace, backend_from(settings), run_id=run_id)
        except ValueError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(EXIT_REFUSED) from exc
    if as_json:
        print_json(report.__dict__)
    else:
        out.print(f"run {report.run_id}: {'same tool calls, answer and status' if report.matches else 'DIFFERENT'}")
        for line in report.differences:
            out.print(f"  - {line}", markup=False)
    if not report.matches:
        raise typer.Exit(EXIT_REFUSED)
