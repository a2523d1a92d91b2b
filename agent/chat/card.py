"""The patient summary card ``/patient`` and ``/summary`` show: who, and what is active now.

Read straight from the backend with plain FHIR searches (no model involved), so the card is
what the record says: active problems, active medications, allergies and the latest value of
each vital sign, every line with the record id it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from tools.ehr.results import concept_text, day, human_name, observation_value, resource_date
from tools.fhir.backend import FhirBackend

MAX_VITALS = 8


@dataclass
class CardLine:
    text: str
    when: str = ""
    ref: str = ""


@dataclass
class PatientCard:
    patient_id: str
    name: str
    age: str
    sex: str
    birth_date: str
    problems: list[CardLine] = field(default_factory=list)
    medications: list[CardLine] = field(default_factory=list)
    allergies: list[CardLine] = field(default_factory=list)
    vitals: list[CardLine] = field(default_factory=list)


def age_of(birth_date: str, deceased: str | None = None, today: date | None = None) -> str:
    try:
        born = date.fromisoformat(birth_date[:10])
    except ValueError:
        return "?"
    end = today or date.today()
    if deceased:
        try:
            end = date.fromisoformat(deceased[:10])
        except ValueError:
            pass
    years = end.year - born.year - ((end.month, end.day) < (born.month, born.day))
    return f"{years}" + (" (deceased)" if deceased else "")


def _ref(resource: dict[str, Any]) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def _search(backend: FhirBackend, rtype: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
    bundle = backend.search(rtype, params)
    return [e["resource"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode", "match") == "match"]


def patient_card(backend: FhirBackend, patient: dict[str, Any]) -> PatientCard:
    pid = patient["id"]
    deceased = patient.get("deceasedDateTime")
    card = PatientCard(pid, human_name(patient.get("name")) or pid, age_of(patient.get("birthDate", ""), deceased),
                       patient.get("gender", "") or "unknown", patient.get("birthDate", ""))
    for cond in _search(backend, "Condition", [("patient", pid), ("clinical-status", "active"), ("_count", "50")]):
        card.problems.append(CardLine(concept_text(cond.get("code")), day(cond.get("onsetDateTime") or
                                                                          cond.get("recordedDate")), _ref(cond)))
    for med in _search(backend, "MedicationRequest", [("patient", pid), ("status", "active"), ("_count", "50")]):
        dosage = "; ".join(d.get("text", "") for d in med.get("dosageInstruction", []) if d.get("text"))
        label = concept_text(med.get("medicationCodeableConcept")) or "medication"
        card.medications.append(CardLine(label + (f" ({dosage})" if dosage else ""), day(med.get("authoredOn")),
                                         _ref(med)))
    for allergy in _search(backend, "AllergyIntolerance", [("patient", pid), ("_count", "50")]):
        status = concept_text(allergy.get("clinicalStatus"))
        if status and status.lower() not in ("active", ""):
            continue
        reactions = ", ".join(concept_text(m) for r in allergy.get("reaction", []) for m in r.get("manifestation", []))
        label = concept_text(allergy.get("code")) + (f" ({reactions})" if reactions else "")
        card.allergies.append(CardLine(label, day(allergy.get("recordedDate")), _ref(allergy)))
    seen: set[str] = set()
    for obs in _search(backend, "Observation", [("patient", pid), ("category", "vital-signs"), ("_sort", "-date"),
                                                ("_count", "100")]):
        label = concept_text(obs.get("code"))
        if not label or label in seen:
            continue
        seen.add(label)
        value, unit = observation_value(obs)
        card.vitals.append(CardLine(f"{label}: {value} {unit}".strip(), day(resource_date(obs)), _ref(obs)))
        if len(card.vitals) >= MAX_VITALS:
            break
    return card
