"""Build draft FHIR R4 orders (MedicationRequest, ServiceRequest, vital-sign Observation).

Pure construction and validation; the session supplies the patient, the codes its record
holds and any Condition to cite as the reason. Every draft is validated with the
``fhir.resources`` R4B models before anyone sees it.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from .resolve import Candidate, looks_like_code, resolve_codes

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"

SYSTEMS = {"loinc": LOINC, "snomed": SNOMED, "snomed ct": SNOMED, "sct": SNOMED, "rxnorm": RXNORM,
           "ucum": UCUM, "cvx": "http://hl7.org/fhir/sid/cvx"}

BP_PANEL, SYSTOLIC, DIASTOLIC = "85354-9", "8480-6", "8462-4"
#: Vital signs an Observation draft may record: LOINC code -> (display, allowed UCUM units).
VITALS: dict[str, tuple[str, tuple[str, ...]]] = {
    BP_PANEL: ("Blood pressure panel with all children optional", ("mm[Hg]",)),
    SYSTOLIC: ("Systolic blood pressure", ("mm[Hg]",)),
    DIASTOLIC: ("Diastolic blood pressure", ("mm[Hg]",)),
    "8867-4": ("Heart rate", ("/min",)),
    "9279-1": ("Respiratory rate", ("/min",)),
    "8310-5": ("Body temperature", ("Cel", "[degF]")),
    "29463-7": ("Body weight", ("kg", "g", "[lb_av]")),
    "8302-2": ("Body height", ("cm", "m", "[in_i]")),
    "39156-5": ("Body mass index (BMI) [Ratio]", ("kg/m2",)),
    "59408-5": ("Oxygen saturation in Arterial blood by Pulse oximetry", ("%",)),
    "2708-6": ("Oxygen saturation in Arterial blood", ("%",)),
    "9843-4": ("Head Occipital-frontal circumference", ("cm", "[in_i]")),
}
UNIT_ALIASES = {
    "mmhg": "mm[Hg]", "mm hg": "mm[Hg]", "bpm": "/min", "beats/min": "/min", "breaths/min": "/min",
    "per min": "/min", "/min": "/min", "c": "Cel", "°c": "Cel", "degc": "Cel", "cel": "Cel", "f": "[degF]",
    "°f": "[degF]", "degf": "[degF]", "[degf]": "[degF]", "kg": "kg", "g": "g", "lb": "[lb_av]", "lbs": "[lb_av]",
    "[lb_av]": "[lb_av]", "cm": "cm", "m": "m", "in": "[in_i]", "inch": "[in_i]", "[in_i]": "[in_i]", "%": "%",
    "percent": "%", "kg/m2": "kg/m2", "kg/m^2": "kg/m2",
}

_LOINC_LIKE = re.compile(r"^\d{1,7}-\d$")


class DraftError(ValueError):
    """A draft that cannot be built as asked (message says what to change)."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def system_url(system: str | None) -> str | None:
    if not system:
        return None
    return SYSTEMS.get(system.strip().lower(), system.strip())


def guess_system(kind: str, code: str) -> str | None:
    if _LOINC_LIKE.match(code):
        return LOINC
    if kind == "MedicationRequest" and code.isdigit():
        return RXNORM
    if code.isdigit():
        return SNOMED
    return None


def concept(system: str | None, code: str | None, display: str | None) -> dict[str, Any]:
    if not code:
        return {"text": display or ""}
    coding = {k: v for k, v in (("system", system), ("code", code), ("display", display)) if v}
    out: dict[str, Any] = {"coding": [coding]}
    if display:
        out["text"] = display
    return out


def ucum(unit: str | None, code: str) -> str:
    allowed = VITALS[code][1]
    if not unit:
        return allowed[0]
    found = UNIT_ALIASES.get(unit.strip().lower(), unit.strip())
    if found not in allowed:
        raise DraftError(f"unit '{unit}' is not valid for {VITALS[code][0]}; use one of: {', '.join(allowed)}")
    return found


def _number(value: Any, what: str) -> float:
    try:
        return float(str(value).strip())
    except ValueError:
        raise DraftError(f"value for {what} must be a number, got '{value}'") from None


def vital_observation(patient_ref: str, code: str, value: Any, unit: str | None) -> dict[str, Any]:
    """A preliminary vital-signs Observation; blood pressure as '128/82' gives the panel."""
    if code not in VITALS:
        names = "; ".join(f"{c} {d}" for c, (d, _) in VITALS.items())
        raise DraftError(f"Observation drafts are for vital signs only; code '{code}' is not one ({names})")
    if value is None or str(value).strip() == "":
        raise DraftError("an Observation draft needs a value (blood pressure as 'systolic/diastolic')")
    obs: dict[str, Any] = {
        "resourceType": "Observation", "status": "preliminary",
        "category": [{"coding": [{"system": OBS_CATEGORY, "code": "vital-signs", "display": "Vital signs"}]}],
        "subject": {"reference": patient_ref}, "effectiveDateTime": now(),
    }
    text = str(value).strip()
    if "/" in text and code in (BP_PANEL, SYSTOLIC, DIASTOLIC):
        sys_, _, dia = text.partition("/")
        u = ucum(unit, BP_PANEL)
        obs["code"] = concept(LOINC, BP_PANEL, VITALS[BP_PANEL][0])
        obs["component"] = [
            {"code": concept(LOINC, c, VITALS[c][0]),
             "valueQuantity": {"value": _number(v, VITALS[c][0]), "unit": u, "system": UCUM, "code": u}}
            for c, v in ((SYSTOLIC, sys_), (DIASTOLIC, dia))]
        return obs
    if code == BP_PANEL:
        raise DraftError("a blood pressure panel needs value 'systolic/diastolic', e.g. '128/82'")
    u = ucum(unit, code)
    obs["code"] = concept(LOINC, code, VITALS[code][0])
    obs["valueQuantity"] = {"value": _number(text, VITALS[code][0]), "unit": u, "system": UCUM, "code": u}
    return obs


def medication_request(patient_ref: str, med: dict[str, Any], dosage_text: str | None,
                       reason: dict[str, Any] | None, note: str | None, priority: str | None) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "MedicationRequest", "status": "draft", "intent": "order",
        "medicationCodeableConcept": med, "subject": {"reference": patient_ref}, "authoredOn": now(),
    }
    if dosage_text:
        res["dosageInstruction"] = [{"text": dosage_text}]
    return _common(res, reason, note, priority)


def service_request(patient_ref: str, code: dict[str, Any], reason: dict[str, Any] | None,
                    note: str | None, priority: str | None) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "ServiceRequest", "status": "draft", "intent": "order",
                           "code": code, "subject": {"reference": patient_ref}, "authoredOn": now()}
    return _common(res, reason, note, priority)


def _common(res: dict[str, Any], reason: dict[str, Any] | None, note: str | None, priority: str | None) -> dict[str, Any]:
    if reason:
        res.update(reason)  # {"reasonReference": [...]} or {"reasonCode": [...]}
    if note:
        res["note"] = [{"text": note}]
    if priority:
        if priority not in ("routine", "urgent", "asap", "stat"):
            raise DraftError(f"priority must be routine, urgent, asap or stat, not '{priority}'")
        res["priority"] = priority
    return res


def validate(resource: dict[str, Any]) -> None:
    """Raise DraftError unless the resource is valid FHIR R4 (fhir.resources R4B models)."""
    from fhir.resources.R4B import get_fhir_model_class

    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except Exception as exc:  # pydantic.ValidationError and fhir_core errors
        errors = getattr(exc, "errors", None)
        detail = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in errors()[:3]) \
            if callable(errors) else str(exc)
        raise DraftError(f"the draft is not valid FHIR R4: {detail}") from exc


def order_code(kind: str, code: str, display: str | None, system: str | None,
               cands: list[Candidate]) -> tuple[str | None, str | None, str | None, str]:
    """(system, code, display, how it was found) for a draft's code or name; ``cands`` are
    the (system, code, display) the record holds for related types."""
    if not code:
        raise DraftError("code is required (a code or a name)")
    if kind == "Observation":
        cands = [c for c in cands if c[1] in VITALS] + [(LOINC, c, d) for c, (d, _) in VITALS.items()]
    if "|" in code:
        sys_, _, cd = code.partition("|")
        return sys_ or None, cd, display or _display(cands, cd), ""
    if any(c == code for _, c, _ in cands) or looks_like_code(code):
        sys_ = system_url(system) or next((s for s, c, _ in cands if c == code), None) or guess_system(kind, code)
        return sys_, code, display or _display(cands, code), ""
    res = resolve_codes(code, cands)
    # A group or panel name ("CBC", "lipid panel", "any statin") reaches several codes: an order
    # is for one thing, so it is drafted as text for the clinician to code, not as one member.
    if res.ok and res.how != "group":
        m = res.matches[0]
        return m.system, m.code, display or m.display, f"matched '{code}' to {m.describe()}"
    if kind == "Observation":
        raise DraftError(f"'{code}' is not a vital sign this tool can record; {res.message}")
    if res.ok:  # a group: several codes, none of them the order
        return None, None, display or code, (f"'{code}' names {len(res.matches)} codes in this record, not one; "
                                             "drafted as text only")
    return None, None, display or code, f"'{code}' has no code in this record; drafted as text only"


def _display(cands: list[Candidate], code: str) -> str | None:
    return next((d for _, c, d in cands if c == code and d), None)
