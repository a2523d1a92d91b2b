"""Each patient's record read straight from a FhirBackend, and the question row format.

Gold answers are computed here from the resources themselves (never through the EHR tools),
so the evaluation measures the tools rather than agreeing with them.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Iterable

from tools.fhir.backend import FhirBackend

TYPES = ("Condition", "MedicationRequest", "Immunization", "Observation", "Encounter")
_DATE_FIELDS = {"Condition": ("onsetDateTime", "onsetPeriod.start", "recordedDate"),
                "MedicationRequest": ("authoredOn",), "Immunization": ("occurrenceDateTime",),
                "Observation": ("effectiveDateTime", "effectivePeriod.start", "issued"),
                "Encounter": ("period.start",)}
_DIGITS = re.compile(r"\d+")


def _get(resource: dict[str, Any], path: str) -> Any:
    value: Any = resource
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def when(resource: dict[str, Any]) -> str:
    """The resource's clinical time as written (ISO text, sortable), '' if none."""
    for path in _DATE_FIELDS.get(resource.get("resourceType", ""), ()):
        value = _get(resource, path)
        if isinstance(value, str) and value:
            return value
    return ""


def day(resource: dict[str, Any]) -> str:
    return when(resource)[:10]


def coding(concept: Any) -> tuple[str, str, str]:
    """(system, code, display) of a CodeableConcept's first coding."""
    if isinstance(concept, list):
        concept = concept[0] if concept else {}
    for c in (concept or {}).get("coding", []) if isinstance(concept, dict) else []:
        if c.get("code"):
            return c.get("system", ""), c["code"], c.get("display") or (concept.get("text") or "")
    return "", "", (concept or {}).get("text", "") if isinstance(concept, dict) else ""


def concept_of(resource: dict[str, Any]) -> tuple[str, str, str]:
    rtype = resource.get("resourceType")
    key = {"MedicationRequest": "medicationCodeableConcept", "Immunization": "vaccineCode", "Encounter": "type"}.get(rtype, "code")
    return coding(resource.get(key))


def token(system: str, code: str) -> str:
    return f"{system}|{code}" if system else code


def person_name(resource: dict[str, Any] | None, with_prefix: bool = False) -> str:
    """'Given Family' of a Patient or Practitioner, with Synthea's number suffixes removed."""
    names = (resource or {}).get("name") or []
    if not names:
        return ""
    n = next((x for x in names if x.get("use") == "official"), names[0])
    parts = (n.get("prefix", []) if with_prefix else []) + n.get("given", []) + [n.get("family", "")]
    return " ".join(_DIGITS.sub("", p).strip() for p in parts if p and _DIGITS.sub("", p).strip())


def age_on(birth: str, on: str) -> int:
    b, d = date.fromisoformat(birth[:10]), date.fromisoformat(on[:10])
    return d.year - b.year - ((d.month, d.day) < (b.month, b.day))


@dataclass
class PatientRecord:
    id: str
    patient: dict[str, Any]
    resources: dict[str, list[dict[str, Any]]]   # type -> resources, oldest first

    @property
    def name(self) -> str:
        return person_name(self.patient)

    @property
    def birth_date(self) -> str:
        return self.patient.get("birthDate", "")

    @property
    def death_day(self) -> str:
        return str(self.patient.get("deceasedDateTime") or "")[:10]

    def of(self, rtype: str) -> list[dict[str, Any]]:
        return self.resources.get(rtype, [])

    @property
    def last_day(self) -> str:
        """The newest clinical date in the record: 'now' for questions about the present."""
        days = [day(r) for t in TYPES for r in self.of(t) if day(r)]
        return max(days) if days else ""

    def codes(self, rtype: str) -> set[str]:
        return {concept_of(r)[1] for r in self.of(rtype)}


def load_records(backend: FhirBackend, patient_ids: Iterable[str] | None = None) -> list[PatientRecord]:
    """Every patient (or the given ones), sorted by id, with their resources of TYPES."""
    if patient_ids:
        patients = [backend.read("Patient", pid) for pid in patient_ids]
    else:
        patients = backend.resources("Patient", [])
    out = []
    for p in sorted(patients, key=lambda x: x["id"]):
        res = {t: sorted(backend.resources(t, [("patient", p["id"])]), key=lambda r: (when(r), r.get("id", "")))
               for t in TYPES}
        out.append(PatientRecord(p["id"], p, res))
    return out


@dataclass
class Question:
    """One evaluation row (JSONL). ``ideal`` holds at most two tool calls; ``extract`` says how
    an oracle reads the answer from the last call's result."""

    id: str
    patient_id: str
    question: str
    now: str
    category: str
    answer_type: str            # yesno | number | date | name | count | text
    gold: Any
    ideal: list[dict[str, Any]]
    extract: dict[str, Any]
    accept: list[str] = field(default_factory=list)
    tolerance: float | None = None
    unit: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> "Question":
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in row.items() if k in names})


def search(rtype: str, name: str | None = None, **args: Any) -> dict[str, Any]:
    """An ideal search_records call (empty arguments dropped). ``name``: the plain name the
    question used for ``code``, so an oracle can also try the tools' name resolution."""
    call: dict[str, Any] = {"tool": "search_records",
                            "args": {"resource_type": rtype, **{k: v for k, v in args.items() if v not in (None, "")}}}
    if name:
        call["name"] = name
    return call
