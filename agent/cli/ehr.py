"""``medagent ehr ...``: call the EHR tools by hand and see exactly what the planner would see."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from tools.ehr import EhrSession, ToolResult

from .common import (ConfigOpt, EXIT_REFUSED, FhirUrlOpt, StoreOpt, backend_from, err, fhir_errors, out,
                     print_json, settings_from)

app = typer.Typer(help="Call the EHR tools (bound to one patient) and print what the planner would read.",
                  no_args_is_help=True)

PatientOpt = Annotated[str, typer.Option("--patient", "-p", help="The patient the session is bound to (Patient id).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the ToolResult (text, ids, error, resources) as JSON.")]


def _session(store: str | None, fhir_url: str | None, config: Path | None, patient: str | None,
             read_only: bool = True) -> EhrSession:
    settings = settings_from(config, store=store, fhir_url=fhir_url)
    backend = backend_from(settings)
    with fhir_errors():
        try:
            return EhrSession(backend, patient_id=patient, read_only=read_only and settings.read_only)
        except LookupError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(EXIT_REFUSED) from exc


def _show(result: ToolResult, as_json: bool) -> None:
    if as_json:
        print_json({**result.model_dump(), "resources": result.resources})
    else:
        out.print(result.for_planner(), markup=False, highlight=False, soft_wrap=True)
    if result.error:
        raise typer.Exit(EXIT_REFUSED)


@app.command()
def find(
    name: Annotated[Optional[str], typer.Option(help="Any part of the name.")] = None,
    birth_date: Annotated[Optional[str], typer.Option(help="YYYY-MM-DD (or YYYY, YYYY-MM).")] = None,
    identifier: Annotated[Optional[str], typer.Option(help="An identifier such as an MRN (system|value or value).")] = None,
    gender: Annotated[Optional[str], typer.Option(help="female, male, other, unknown.")] = None,
    store: StoreOpt = None, fhir_url: FhirUrlOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """find_patient: candidates by name, birth date, identifier or gender."""
    _show(_session(store, fhir_url, config, None).find_patient(name, birth_date, identifier, gender), as_json)


@app.command()
def summary(patient: PatientOpt, store: StoreOpt = None, fhir_url: FhirUrlOpt = None, config: ConfigOpt = None,
            as_json: JsonOpt = False) -> None:
    """patient_summary: demographics and what the record holds (types, counts, codes, dates)."""
    _show(_session(store, fhir_url, config, patient).patient_summary(), as_json)


@app.command()
def search(
    patient: PatientOpt,
    resource_type: Annotated[str, typer.Argument(help="Observation, Condition, MedicationRequest, Immunization, ...")],
    code: Annotated[Optional[str], typer.Option(help="A code, system|code, or a plain name such as 'HbA1c'.")] = None,
    date_from: Annotated[Optional[str], typer.Option("--from", help="YYYY[-MM[-DD]], inclusive.")] = None,
    date_to: Annotated[Optional[str], typer.Option("--to", help="YYYY[-MM[-DD]], inclusive.")] = None,
    status: Annotated[Optional[str], typer.Option()] = None,
    category: Annotated[Optional[str], typer.Option()] = None,
    limit: Annotated[Optional[int], typer.Option(help="Rows to show.")] = None,
    store: StoreOpt = None, fhir_url: FhirUrlOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """search_records: the patient's records of one type, newest first."""
    session = _session(store, fhir_url, config, patient)
    _show(session.search_records(resource_type, code=code, date_from=date_from, date_to=date_to, status=status,
                                 category=category, limit=limit), as_json)


@app.command()
def read(patient: PatientOpt, reference: Annotated[str, typer.Argument(help="Type/id")],
         store: StoreOpt = None, fhir_url: FhirUrlOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """read_record: one record in full (refused if it belongs to another patient)."""
    _show(_session(store, fhir_url, config, patient).read_record(reference), as_json)


@app.command()
def draft(
    patient: PatientOpt,
    kind: Annotated[Literal["MedicationRequest", "ServiceRequest", "Observation"], typer.Argument()],
    code: Annotated[str, typer.Option(help="A code or a name the record holds ('HbA1c', 'metformin').")],
    display: Annotated[Optional[str], typer.Option()] = None,
    system: Annotated[Optional[str], typer.Option(help="LOINC, SNOMED or RxNorm for a bare code.")] = None,
    dosage: Annotated[Optional[str], typer.Option(help="Dosage text, for a MedicationRequest.")] = None,
    value: Annotated[Optional[str], typer.Option(help="Value, for a vital-sign Observation ('128/82' for BP).")] = None,
    unit: Annotated[Optional[str], typer.Option()] = None,
    reason: Annotated[Optional[str], typer.Option(help="The condition it is for, e.g. 'diabetes'.")] = None,
    submit: Annotated[bool, typer.Option("--submit", help="Write the draft to the record (needs --allow-writes and a yes).")] = False,
    allow_writes: Annotated[bool, typer.Option("--allow-writes", help="Open the session read-write for --submit.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm the write without asking.")] = False,
    store: StoreOpt = None, fhir_url: FhirUrlOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """draft_order: build an order as a validated FHIR draft; nothing is written unless --submit."""
    session = _session(store, fhir_url, config, patient, read_only=not allow_writes)
    drafted = session.draft_order(kind, code, display=display, system=system, dosage_text=dosage, value=value,
                                  unit=unit, reason=reason)
    _show(drafted, as_json)
    if not submit or drafted.error:
        return
    if session.read_only:
        err.print("[red]not written:[/red] the session is read-only; pass --allow-writes (or set MEDAGENT_READ_ONLY=false)")
        raise typer.Exit(EXIT_REFUSED)
    confirm = yes or typer.confirm("Write this order to the record?", default=False, err=True)
    _show(session.submit_order(drafted.resources[0], confirm=confirm), as_json)
