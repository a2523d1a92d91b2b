"""Record types, statuses and categories by the names planners and clinicians use for them.

"meds" is MedicationRequest, "labs" an Observation category, "outpatient" an Encounter class,
"visits" the whole Encounter type; a category FHIR R4 does not define for a type is a guess to
ignore (with a note), not a filter that finds nothing. ``search_records`` reads its arguments
through these tables (search_args.py), and the agent's grounding reads the same words in the
question.
"""

from __future__ import annotations

import re

from tools.fhir.search_params import CODE_PARAM

CLINICAL = tuple(CODE_PARAM)
TYPE_ALIASES = {
    "allergy": "AllergyIntolerance", "allergies": "AllergyIntolerance", "medication": "MedicationRequest",
    "medications": "MedicationRequest", "meds": "MedicationRequest", "prescription": "MedicationRequest",
    "prescriptions": "MedicationRequest", "vaccine": "Immunization", "vaccines": "Immunization",
    "vaccination": "Immunization", "vaccinations": "Immunization", "immunizations": "Immunization",
    "lab": "Observation", "labs": "Observation", "vitals": "Observation", "observations": "Observation",
    "problem": "Condition", "problems": "Condition", "diagnosis": "Condition", "diagnoses": "Condition",
    "conditions": "Condition", "visit": "Encounter", "visits": "Encounter", "encounters": "Encounter",
    "procedures": "Procedure", "note": "DocumentReference", "notes": "DocumentReference",
    "documents": "DocumentReference", "report": "DiagnosticReport", "reports": "DiagnosticReport",
    "imaging": "ImagingStudy", "order": "ServiceRequest", "orders": "ServiceRequest", "careplans": "CarePlan",
}
# Words that name a whole record type, not a code in it: "how many visits in 2017?" searched as
# Encounter code 'visit' found no such code and the planner answered 'none'. Such a code is no
# filter at all (said in the result).
GENERIC_NAMES = {
    "Encounter": "visit encounter appointment",
    "MedicationRequest": "medication medicine drug prescription med rx",
    "Condition": "condition diagnosis problem disease",
    "Immunization": "immunization vaccine vaccination shot",
    "Observation": "observation result measurement",
    "Procedure": "procedure",
    "AllergyIntolerance": "allergy",
}


def category_named(resource_type: str, code: str) -> str | None:
    """'outpatient' (visits) for Encounter, 'labs' or 'vital signs' for Observation: when a code
    is one of the type's categories (or an alias of one), that category, to filter by instead of
    a code. "How many outpatient visits in 2002?" was searched as Encounter code 'outpatient': no
    encounter type is called that; the class is AMB. None when the code is no category."""
    text = re.sub(r"\s+(visits?|encounters?|results?|tests?)$", "", code.strip(), flags=re.I)
    low = text.lower()
    aliases = CATEGORY_ALIASES.get(resource_type, {})
    codes = {c.lower() for c in CATEGORY_CODES.get(resource_type, "").split()}
    return text if low and (low in aliases or low in codes or low.replace(" ", "-") in codes) else None


def names_whole_type(resource_type: str, code: str) -> bool:
    """'visits' for Encounter, 'vaccines' for Immunization: the type itself, not one of its codes."""
    words = GENERIC_NAMES.get(resource_type, "").split()
    text = re.sub(r"[^a-z ]", "", code.strip().lower())
    return any(text in (w, w + "s", w + "es") for w in words)


STATUS_PARAM = {"Condition": "clinical-status", "AllergyIntolerance": "clinical-status"}
CATEGORY_ALIASES = {
    "Observation": {"lab": "laboratory", "labs": "laboratory", "vitals": "vital-signs", "vital": "vital-signs",
                    "vital signs": "vital-signs", "social history": "social-history"},
    "DiagnosticReport": {"lab": "LAB", "labs": "LAB", "laboratory": "LAB"},
    # Not "diagnosis": clinicians say it of any condition ("is there a diagnosis of ankle
    # sprain?"), and as a filter it hid every Synthea condition (they carry no category).
    "Condition": {"problem": "problem-list-item", "problem list": "problem-list-item"},
    "Encounter": {"ambulatory": "AMB", "outpatient": "AMB", "emergency": "EMER", "er": "EMER", "ed": "EMER",
                  "inpatient": "IMP"},
}


def clinical_type(resource_type: str) -> str:
    """'Observation', 'observation' or an everyday name ('allergies', 'meds') -> the type."""
    name = str(resource_type).strip()
    by_lower = {t.lower(): t for t in CLINICAL}
    found = by_lower.get(name.lower()) or TYPE_ALIASES.get(name.lower())
    if not found:
        raise ValueError(f"resource_type must be one of {', '.join(CLINICAL)} (got '{resource_type}')")
    return found


# The category codes FHIR R4 defines per type (observation-category, condition-category,
# medicationrequest-category, v3 ActCode encounter classes, allergy categories, v2-0074 report
# sections). A value outside them can match nothing: 'medication' for a MedicationRequest,
# 'vaccine' for an Immunization are a model's guesses, ignored with a note rather than searched.
CATEGORY_CODES = {
    "Observation": "social-history vital-signs imaging laboratory procedure survey exam therapy activity",
    "Condition": "problem-list-item encounter-diagnosis health-concern",
    "MedicationRequest": "inpatient outpatient community discharge",
    "Encounter": "AMB EMER FLD HH IMP ACUTE NONAC OBSENC PRENC SS VR",
    "AllergyIntolerance": "food medication environment biologic",
    "DiagnosticReport": "AU BG BLB CG CH CP CT CTH CUS EC EN GE HM ICU IMM LAB MB MCB MYC NMR NMS NRS OSL OT OUS "
                        "PAR PAT PF PHR PHY PT RAD RC RT RUS RX SP SR TX VR VUS XRC",
}


def category_value(resource_type: str, category: str) -> tuple[str | None, list[str]]:
    """'labs' -> 'laboratory' (Observation), 'emergency' -> 'EMER' (Encounter class), ...; and
    the values that are no category of this type (dropped). None when none is left."""
    aliases = CATEGORY_ALIASES.get(resource_type, {})
    known = {c.lower(): c for c in CATEGORY_CODES.get(resource_type, "").split()}
    kept, unknown = [], []
    for part in (c.strip() for c in category.split(",") if c.strip()):
        value = aliases.get(part.lower(), part)
        if known and value.lower() not in known:
            unknown.append(part)
        else:
            kept.append(known.get(value.lower(), value))
    return (",".join(kept) or None), unknown
