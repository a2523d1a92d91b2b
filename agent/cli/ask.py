"""``medagent ask``: answer one question about one patient with the agent."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from rich.panel import Panel

from .common import (ConfigOpt, EXIT_REFUSED, EXIT_UNAVAILABLE, FhirUrlOpt, StoreOpt, backend_from, citation_line, model_from,
                     err, fhir_errors, out, print_json, settings_from)
from .llm import LlmOpt

EXIT_STATUS = {"completed": 0, "error": EXIT_UNAVAILABLE}


def ask(
    question: Annotated[str, typer.Argument(help="The question, e.g. 'What was her most recent HbA1c?'")],
    patient: Annotated[str, typer.Option("--patient", "-p", help="The Patient id the run is bound to.")],
    llm: LlmOpt = None,
    strategy: Annotated[Literal["react", "navigator"], typer.Option(help="react: the model picks narrow searches; navigator: manifest, types, fetches, extraction, synthesis.")] = "react",
    trace: Annotated[Optional[Path], typer.Option(help="Write the run's trace (JSONL) here.")] = None,
    redact: Annotated[bool, typer.Option("--redact", help="Keep patient content out of the trace.")] = False,
    now: Annotated[Optional[str], typer.Option(help="The date the run is told it is (ISO), for questions like 'last year'.")] = None,
    session: Annotated[Optional[str], typer.Option(help="Keep a multi-turn conversation under this id (resume it later).")] = None,
    max_steps: Annotated[int, typer.Option(help="Model turns before the run stops with status max_steps.")] = 8,
    max_tokens: Annotated[int, typer.Option(help="Tokens (in + out) before the run stops with status context_limit.")] = 60_000,
    narrow: Annotated[bool, typer.Option("--narrow", help="Limit search_records' record types to those the patient's record holds.")] = False,
    image: Annotated[Optional[Path], typer.Option(help="An image (PNG, JPEG, DICOM) for the question: shown to a multimodal MedGemma (openai: or hf: backends) and the image tools' query.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print answer, status, cited ids, steps, tokens, trace path as JSON.")] = False,
    store: StoreOpt = None, fhir_url: FhirUrlOpt = None, config: ConfigOpt = None,
) -> None:
    """Answer a question about a patient's record, citing the record ids it rests on."""
    from agent.images_in import MULTIMODAL_KINDS
    from agent.knowledge import knowledge_tools, record_notes
    from agent.run import run_question

    settings = settings_from(config, store=store, fhir_url=fhir_url, llm=llm)
    spec, model = model_from(settings)
    backend = backend_from(settings)
    checkpointer = _checkpointer(session)
    with fhir_errors():
        try:
            result = run_question(question, backend=backend, patient_id=patient, model=model, model_label=str(spec),
                                  strategy=strategy, trace_path=trace, redact=redact, now=now, max_steps=max_steps,
                                  max_tokens=max_tokens, constrained=settings.constrained, thinking=settings.thinking,
                                  narrow=narrow, examples=settings.examples, session_id=session,
                                  checkpointer=checkpointer, extra_tools=knowledge_tools(settings, patient),
                                  row_notes=record_notes(settings), image=image,
                                  image_to_model=spec.kind in MULTIMODAL_KINDS)
        except (LookupError, ValueError) as exc:  # no such patient; an unreadable image
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(EXIT_REFUSED) from exc
        finally:
            if checkpointer is not None:
                checkpointer.conn.close()
    if as_json:
        print_json(result.to_json())
    else:
        out.print(Panel(result.answer or "(no answer)", title=f"{result.status}", title_align="left"), markup=False)
        detail = f"{result.steps} step(s), {result.model_calls} model call(s), {result.tool_calls} tool call(s), " \
                 f"{result.input_tokens:,} -> {result.output_tokens:,} tokens, {result.seconds:.1f} s"
        if result.status == "completed":
            detail += "\n" + citation_line(result.cited_ids)
        if result.trace_path:
            detail += f"\ntrace: {result.trace_path}"
        if session:
            detail += f"\nsession: {session}"
        err.print(detail, markup=False, highlight=False)
    raise typer.Exit(EXIT_STATUS.get(result.status, EXIT_REFUSED) if result.status != "completed" else 0)


def _checkpointer(session: str | None):
    if not session:
        return None
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver
    from platformdirs import user_data_dir

    path = Path(user_data_dir("medagent")) / "sessions.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteSaver(sqlite3.connect(str(path), check_same_thread=False))
