"""A patient manifest: who the patient is and what their record holds, per resource type.

The planner reads it (``Manifest.render``) to discover what it can ask for: the types
present, how many of each, their date range, and the codes present with display names.
``build_manifest`` uses a backend's own fast ``patient_manifest`` when it has one and
otherwise builds the manifest generically from FHIR searches (works on any FHIR server).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, Field

from .backend import FhirBackend, next_link
from .extract import walk
from .search_params import CODE_PARAM, DATE_PARAM, lookup

PAGE_SIZE = 1000


class CodeCount(BaseModel):
    system: str | None = None
    code: str | None = None
    display: str | None = None
    count: int = 0
    first: str | None = None  # YYYY-MM-DD of the oldest resource carrying the code
    last: str | None = None   # ... and of the newest

    @property
    def token(self) -> str:
        """The value a token search takes: ``system|code`` (or the bare code)."""
        return f"{self.system}|{self.code}" if self.system else (self.code or "")


class TypeSummary(BaseModel):
    count: int = 0
    first: str | None = None
    last: str | None = None
    codes: list[CodeCount] = Field(default_factory=list)  # count desc, then newest


class Manifest(BaseModel):
    id: str
    name: str = ""
    gender: str | None = None
    birthDate: str | None = None
    deceased: bool | str | None = None  # True, a date(-time), or None/False
    types: dict[str, TypeSummary] = Field(default_factory=dict)

    def codes(self, resource_type: str) -> list[CodeCount]:
        summary = self.types.get(resource_type)
        return list(summary.codes) if summary else []

    def demographics(self, as_of: str | None = None) -> str:
        """'female | born 2017-05-02 | age 2 on 2020-03-13': what a chart's banner shows."""
        facts = [self.gender or "gender unknown"]
        if self.birthDate:
            facts.append(f"born {self.birthDate}")
            if not self.deceased:
                facts.append(f"age {_age(self.birthDate, as_of)}" + (f" on {as_of[:10]}" if as_of else ""))
        if self.deceased:
            facts.append("deceased" + (f" {str(self.deceased)[:10]}" if isinstance(self.deceased, str) else ""))
        return " | ".join(facts)

    def render(self, max_codes_per_type: int = 12, as_of: str | None = None) -> str:
        """Compact text: demographics, then one block per type present. ``as_of`` (the run's
        reference date) is the day the age is given for: a question set years back is about
        the patient's age then, not today."""
        head = [f"Patient {self.name or '(no name)'} | id {self.id}", self.demographics(as_of)]
        lines = [" | ".join(head), "Record holds (type: count (date range), then its codes: code display xN date range):"]
        absent = []
        for rtype in CODE_PARAM:
            summary = self.types.get(rtype)
            if not summary or not summary.count:
                absent.append(rtype)
                continue
            lines.append(f"{rtype}: {summary.count} ({_span(summary.first, summary.last) or 'no dates'})")
            for c in summary.codes[:max_codes_per_type]:
                words = [c.code or "(no code)", c.display or "", f"x{c.count}", _span(c.first, c.last)]
                lines.append("  " + " ".join(w for w in words if w))
            if len(summary.codes) > max_codes_per_type:
                lines.append(f"  (+{len(summary.codes) - max_codes_per_type} more codes; search by name to find them)")
        if absent:
            lines.append(f"None recorded: {', '.join(absent)}")
        return "\n".join(lines)


# -- extractors shared with the EHR tools' rendering -------------------------------------

def day(value: Any) -> str:
    """'2016-02-10T09:30:00+00:00' -> '2016-02-10'; a Period -> its start (or end)."""
    if isinstance(value, dict):
        value = value.get("start") or value.get("end")
    return value[:10] if isinstance(value, str) else ""


_DATE_FALLBACK = {
    "Observation": ("effective[x]", "issued"), "Condition": ("onset[x]", "recordedDate"),
    "MedicationRequest": ("authoredOn",), "Immunization": ("occurrence[x]", "recorded"),
    "Encounter": ("period",), "AllergyIntolerance": ("recordedDate", "onset[x]"),
    "Procedure": ("performed[x]",), "DiagnosticReport": ("effective[x]", "issued"),
    "CarePlan": ("period", "created"), "DocumentReference": ("date", "context.period"),
    "ImagingStudy": ("started",), "ServiceRequest": ("authoredOn", "occurrence[x]"),
    "Patient": ("birthDate",),
}


def resource_date(resource: dict[str, Any]) -> str:
    """The resource's main date as YYYY-MM-DD (its DATE_PARAM path first), or ''."""
    rtype = resource.get("resourceType", "")
    paths: list[str] = []
    param = lookup(rtype, DATE_PARAM.get(rtype, ""))
    if param:
        paths += param.paths
    paths += _DATE_FALLBACK.get(rtype, ())
    for path in paths:
        for value in walk(resource, path):
            if (d := day(value)):
                return d
    return ""


def codings(value: Any) -> list[tuple[str | None, str | None, str | None]]:
    """(system, code, display) of a CodeableConcept, a Coding, or a list of them."""
    out: list[tuple[str | None, str | None, str | None]] = []
    for item in value if isinstance(value, list) else [value]:
        if not isinstance(item, dict):
            continue
        if "coding" in item or ("text" in item and "code" not in item):
            for c in item.get("coding") or []:
                out.append((c.get("system"), c.get("code"), c.get("display") or item.get("text")))
            if not item.get("coding") and item.get("text"):
                out.append((None, None, item["text"]))
        elif "code" in item:
            out.append((item.get("system"), item.get("code"), item.get("display")))
    return out


def human_name(names: Any) -> str:
    if not isinstance(names, list) or not names:
        return ""
    official = next((n for n in names if n.get("use") == "official"), names[0])
    if official.get("text"):
        return official["text"]
    return " ".join([*official.get("given", []), official.get("family", "")]).strip()


def _span(first: str | None, last: str | None) -> str:
    if first and last and first != last:
        return f"{first}..{last}"
    return last or first or ""


def _age(birth: str, as_of: str | None = None) -> int | str:
    try:
        born = date.fromisoformat(birth[:10])
        today = date.fromisoformat(as_of[:10]) if as_of else date.today()
    except ValueError:
        return "?"
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _all_pages(backend: FhirBackend, resource_type: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
    bundle = backend.search(resource_type, [*params, ("_count", str(PAGE_SIZE))])
    out = []
    while True:
        out += [e["resource"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode", "match") == "match"]
        url = next_link(bundle)
        if not url:
            return out
        bundle = backend.fetch_page(url)


def summarise(resource_type: str, resources: list[dict[str, Any]]) -> TypeSummary:
    """Count, date range and codes present (by the type's CODE_PARAM) of one type's resources."""
    param = lookup(resource_type, CODE_PARAM.get(resource_type, ""))
    paths = param.paths if param else ()
    summary = TypeSummary(count=len(resources))
    by_code: dict[tuple[str | None, str | None, str | None], CodeCount] = {}
    dates = []
    for res in resources:
        when = resource_date(res) or None
        if when:
            dates.append(when)
        seen = set()
        for path in paths:
            for value in walk(res, path):
                for system, code, display in codings(value):
                    key = (system, code, None if code else display)
                    if key in seen:
                        continue
                    seen.add(key)
                    entry = by_code.setdefault(key, CodeCount(system=system, code=code, display=display))
                    entry.display = entry.display or display
                    entry.count += 1
                    if when and (entry.last is None or when > entry.last):
                        entry.last = when
                    if when and (entry.first is None or when < entry.first):
                        entry.first = when
    if dates:
        summary.first, summary.last = min(dates), max(dates)
    codes = sorted(by_code.values(), key=lambda c: c.display or c.code or "")
    codes.sort(key=lambda c: c.last or "", reverse=True)
    codes.sort(key=lambda c: -c.count)  # stable: count desc, then newest, then name
    summary.codes = codes
    return summary


def build_manifest(backend: FhirBackend, patient_id: str) -> Manifest:
    """The manifest of one patient: the backend's own ``patient_manifest`` if it has one,
    else built from a search per clinical type (``patient=<id>``, every page)."""
    fast = getattr(backend, "patient_manifest", None)
    if callable(fast):
        found = fast(patient_id)
        return found if isinstance(found, Manifest) else Manifest.model_validate(found)
    patient = backend.read("Patient", patient_id)
    deceased = patient.get("deceasedDateTime") or patient.get("deceasedBoolean") or None
    manifest = Manifest(id=patient_id, name=human_name(patient.get("name")), gender=patient.get("gender"),
                        birthDate=patient.get("birthDate"), deceased=deceased)
    for rtype in CODE_PARAM:
        found = _all_pages(backend, rtype, [("patient", patient_id)])
        if found:
            manifest.types[rtype] = summarise(rtype, found)
    return manifest
