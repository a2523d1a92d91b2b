"""``medagent demo``: the main job on the embedded default, for a first run on a new machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from fhir_fixtures import bundle_paths

from .common import ConfigOpt, StoreOpt, backend_from, citation_line, err, fhir_errors, out, settings_from
from .fhir import print_stats


def demo(store: StoreOpt = None, config: ConfigOpt = None,
         llm: Annotated[Optional[str], typer.Option("--llm", help="The planner model (default: embedded).")] = None) -> None:
    """Load the bundled synthetic patients, show what the record holds, and ask the agent a question."""
    settings = settings_from(config, store=store, llm=llm)
    backend = backend_from(settings.model_copy(update={"fhir_url": None}))
    with fhir_errors():
        report = backend.load_paths(bundle_paths(), validation=settings.validation)  # type: ignore[attr-defined]
    for message in report.errors:
        err.print(f"[red]not loaded:[/red] {message}")
    out.print(f"Loaded {report.files} fixture bundles into {settings.store}: {report.resources} written, "
              f"{report.unchanged} unchanged, in {report.seconds:.2f} s")
    print_stats(backend.stats(), f"The store holds ({backend.label})")  # type: ignore[attr-defined]
    patients = Table(title="Patients", show_edge=False)
    for col in ("name", "gender", "born", "resources"):
        patients.add_column(col)
    patients.add_column("id", no_wrap=True, overflow="fold")
    counts = backend.patient_counts()  # type: ignore[attr-defined]
    for patient in backend.resources("Patient", [("_sort", "family,given")]):
        name = (patient.get("name") or [{}])[0]
        label = " ".join([*name.get("given", []), name.get("family", "")]).strip()
        patients.add_row(label, patient.get("gender", ""), patient.get("birthDate", ""),
                         str(counts.get(patient["id"], 0)), patient["id"])
    out.print(patients)

    _show_tools(backend)
    _ask_embedded(backend, settings)


def _show_tools(backend) -> None:
    """What the planner will see: two EHR tool calls on the diabetic fixture patient."""
    from rich.panel import Panel

    from fhir_fixtures import PATIENTS
    from tools.ehr import EhrSession

    patient = PATIENTS["diabetic"]
    session = EhrSession(backend, patient_id=patient.id)
    calls = [("patient_summary()", session.patient_summary()),
             ('search_records("Observation", code="HbA1c", limit=5)',
              session.search_records("Observation", code="HbA1c", limit=5))]
    for call, result in calls:
        out.print(Panel(result.for_planner(), title=f"EHR tool {call} for {patient.name}", title_align="left",
                        expand=False), markup=False)


def _ask_embedded(backend, settings) -> None:
    """The agent answers one question about the diabetic fixture patient with the embedded model."""
    from rich.panel import Panel

    from agent.models import parse_spec
    from agent.models.factory import build_chat_model
    from agent.run import run_question
    from fhir_fixtures import PATIENTS
    from platformdirs import user_data_dir

    patient = PATIENTS["diabetic"]
    question = "What was the patient's most recent HbA1c?"
    spec = parse_spec(settings.llm)
    trace = Path(user_data_dir("medagent")) / "traces" / "demo.jsonl"
    trace.parent.mkdir(parents=True, exist_ok=True)
    err.print(f"Asking the agent ({spec}, first load takes a few seconds): {question}")
    model = build_chat_model(spec, settings)
    result = run_question(question, backend=backend, patient_id=patient.id, model=model,
                          model_label=str(spec), trace_path=trace, constrained=settings.constrained,
                          thinking=settings.thinking, examples=settings.examples, max_steps=6)
    body = f"{result.answer or '(no answer)'}\n\n{citation_line(result.cited_ids)}"
    out.print(Panel(body, title=f"agent ({spec}) on {patient.name}: {question} [{result.status}]",
                    title_align="left", expand=False), markup=False)
    out.print(f"{result.steps} step(s), {result.model_calls} model call(s), {result.tool_calls} tool call(s), "
              f"{result.input_tokens:,} -> {result.output_tokens:,} tokens, {result.seconds:.1f} s; "
              f"trace: {trace} (medagent trace show {trace})", markup=False, highlight=False)
    if spec.kind == "embedded":
        if getattr(model, "needs_examples", False):
            note = (f"The embedded model {model.model_name} is a small base model: it runs the whole pipeline "
                    "offline, but its choices are often wrong.")
        else:
            note = (f"The embedded model {model.model_name} is a small instruction-tuned model on 2-8 CPU cores: "
                    "right on simple lookups, often wrong on harder questions.")
        out.print(f"{note} For real answers point --llm at MedGemma (a vLLM endpoint or local weights), e.g. "
                  "--llm openai:google/medgemma-27b-text-it@http://gpu-host:8000/v1.", markup=False, highlight=False)
