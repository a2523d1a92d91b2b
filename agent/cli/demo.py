"""``medagent demo``: the main job on the embedded default, for a first run on a new machine."""

from __future__ import annotations

from rich.table import Table

from fhir_fixtures import bundle_paths

from .common import ConfigOpt, StoreOpt, backend_from, err, fhir_errors, out, settings_from
from .fhir import print_stats


def demo(store: StoreOpt = None, config: ConfigOpt = None) -> None:
    """Load the bundled synthetic patients into the store and show what the record holds."""
    settings = settings_from(config, store=store)
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
