"""Read what the grader needs from the record, the way their refsol does.

Their refsol asks the server at grading time (``Patient?identifier=MRN``, ``Observation?patient=MRN
&code=MG&_count=5000``). ``facts_from_backend`` asks any ``FhirBackend`` the same; generated tasks
also carry the facts they were made from (``rules.facts``), so a run graded against a changed store
still reports the gold it was generated with, and tests can check both agree.
"""

from __future__ import annotations

from typing import Any

from tools.fhir.backend import FhirBackend, FhirError, NotFound

from .grade import Facts
from .tasks import Task

#: Kinds whose gold comes from one code's Observation values (task2 needs the birth date).
VALUE_KINDS = ("task4", "task5", "task6", "task7", "task9", "task10")


def observation_value(resource: dict[str, Any]) -> float | None:
    q = resource.get("valueQuantity")
    if isinstance(q, dict) and isinstance(q.get("value"), (int, float)):
        return q["value"]
    return None


def find_patient(backend: FhirBackend, mrn: str) -> dict[str, Any] | None:
    """The patient whose id or identifier is ``mrn`` (their server uses the MRN as the id)."""
    try:
        return backend.read("Patient", mrn)
    except (NotFound, FhirError):
        pass
    found = backend.resources("Patient", [("identifier", mrn)])
    return found[0] if found else None


def observations(backend: FhirBackend, patient_id: str, code: str) -> list[tuple[str, float]]:
    out = []
    for r in backend.resources("Observation", [("patient", patient_id), ("code", code)]):
        value, when = observation_value(r), r.get("effectiveDateTime")
        if value is not None and when:
            out.append((when, value))
    return sorted(out)


def facts_from_backend(task: Task, backend: FhirBackend) -> Facts:
    patient = find_patient(backend, task.eval_mrn) if task.kind != "task1" else None
    facts = Facts(birth_date=(patient or {}).get("birthDate"))
    if task.kind in VALUE_KINDS and patient is not None and task.code:
        facts.observations = observations(backend, patient["id"], task.code)
    return facts


def facts_for(task: Task, backend: FhirBackend | None) -> Facts:
    """The facts a task was generated with, else the record's (empty when there is no backend)."""
    if "facts" in task.rules:
        return Facts.from_json(task.rules["facts"])
    return facts_from_backend(task, backend) if backend is not None else Facts()
