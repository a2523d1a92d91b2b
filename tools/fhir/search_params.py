"""The FHIR R4 search parameters the embedded store indexes, per resource type.

Names, types and paths follow the R4 specification's SearchParameter definitions for the
parameters an EHR agent needs. A path is a dotted walk over the JSON (lists are walked
through); ``name[x]`` matches every choice type (``effectiveDateTime``, ``effectivePeriod``...).
Reference parameters may name the resource types they point to (``patient`` -> Patient).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["token", "reference", "date", "string"]


@dataclass(frozen=True)
class SearchParam:
    name: str
    kind: Kind
    paths: tuple[str, ...]
    targets: tuple[str, ...] = ()  # for references: allowed target types (empty = any)


def _p(name: str, kind: Kind, *paths: str, targets: tuple[str, ...] = ()) -> SearchParam:
    return SearchParam(name, kind, paths, targets)


def _subject_params() -> list[SearchParam]:
    return [
        _p("patient", "reference", "subject", targets=("Patient",)),
        _p("subject", "reference", "subject"),
        _p("encounter", "reference", "encounter", targets=("Encounter",)),
    ]


_BY_TYPE: dict[str, list[SearchParam]] = {
    "Patient": [
        _p("name", "string", "name"),
        _p("family", "string", "name.family"),
        _p("given", "string", "name.given"),
        _p("birthdate", "date", "birthDate"),
        _p("gender", "token", "gender"),
        _p("identifier", "token", "identifier"),
        _p("address-city", "string", "address.city"),
        _p("general-practitioner", "reference", "generalPractitioner"),
        _p("organization", "reference", "managingOrganization", targets=("Organization",)),
    ],
    "Observation": _subject_params() + [
        _p("code", "token", "code"),
        _p("category", "token", "category"),
        _p("status", "token", "status"),
        _p("date", "date", "effective[x]"),
        _p("combo-code", "token", "code", "component.code"),
        _p("component-code", "token", "component.code"),
        _p("value-concept", "token", "valueCodeableConcept"),
        _p("based-on", "reference", "basedOn"),
        _p("performer", "reference", "performer"),
    ],
    "Condition": _subject_params() + [
        _p("code", "token", "code"),
        _p("category", "token", "category"),
        _p("clinical-status", "token", "clinicalStatus"),
        _p("verification-status", "token", "verificationStatus"),
        _p("severity", "token", "severity"),
        _p("body-site", "token", "bodySite"),
        _p("onset-date", "date", "onsetDateTime", "onsetPeriod"),
        _p("abatement-date", "date", "abatementDateTime", "abatementPeriod"),
        _p("recorded-date", "date", "recordedDate"),
    ],
    "MedicationRequest": _subject_params() + [
        _p("code", "token", "medicationCodeableConcept"),
        _p("medication", "reference", "medicationReference", targets=("Medication",)),
        _p("status", "token", "status"),
        _p("intent", "token", "intent"),
        _p("category", "token", "category"),
        _p("priority", "token", "priority"),
        _p("authoredon", "date", "authoredOn"),
        _p("requester", "reference", "requester"),
    ],
    "Immunization": [
        _p("patient", "reference", "patient", targets=("Patient",)),
        _p("vaccine-code", "token", "vaccineCode"),
        _p("date", "date", "occurrenceDateTime"),
        _p("status", "token", "status"),
        _p("status-reason", "token", "statusReason"),
        _p("reason-code", "token", "reasonCode"),
        _p("performer", "reference", "performer.actor"),
        _p("location", "reference", "location", targets=("Location",)),
    ],
    "Encounter": _subject_params()[:2] + [
        _p("class", "token", "class"),
        _p("type", "token", "type"),
        _p("status", "token", "status"),
        _p("date", "date", "period"),
        _p("reason-code", "token", "reasonCode"),
        _p("participant", "reference", "participant.individual"),
        _p("practitioner", "reference", "participant.individual", targets=("Practitioner",)),
        _p("service-provider", "reference", "serviceProvider", targets=("Organization",)),
        _p("location", "reference", "location.location", targets=("Location",)),
    ],
    "AllergyIntolerance": [
        _p("patient", "reference", "patient", targets=("Patient",)),
        _p("code", "token", "code", "reaction.substance"),
        _p("clinical-status", "token", "clinicalStatus"),
        _p("verification-status", "token", "verificationStatus"),
        _p("category", "token", "category"),
        _p("criticality", "token", "criticality"),
        _p("type", "token", "type"),
        _p("date", "date", "recordedDate"),
        _p("onset", "date", "reaction.onset"),
        _p("recorder", "reference", "recorder"),
        _p("asserter", "reference", "asserter"),
    ],
    "Procedure": _subject_params() + [
        _p("code", "token", "code"),
        _p("status", "token", "status"),
        _p("category", "token", "category"),
        _p("date", "date", "performed[x]"),
        _p("reason-code", "token", "reasonCode"),
        _p("performer", "reference", "performer.actor"),
    ],
    "DiagnosticReport": _subject_params() + [
        _p("code", "token", "code"),
        _p("category", "token", "category"),
        _p("status", "token", "status"),
        _p("date", "date", "effective[x]"),
        _p("issued", "date", "issued"),
        _p("result", "reference", "result", targets=("Observation",)),
        _p("performer", "reference", "performer"),
    ],
    "CarePlan": _subject_params() + [
        _p("category", "token", "category"),
        _p("status", "token", "status"),
        _p("intent", "token", "intent"),
        _p("date", "date", "period"),
        _p("activity-code", "token", "activity.detail.code"),
        _p("condition", "reference", "addresses", targets=("Condition",)),
    ],
    "DocumentReference": [
        _p("patient", "reference", "subject", targets=("Patient",)),
        _p("subject", "reference", "subject"),
        _p("encounter", "reference", "context.encounter"),
        _p("type", "token", "type"),
        _p("category", "token", "category"),
        _p("status", "token", "status"),
        _p("date", "date", "date"),
        _p("period", "date", "context.period"),
        _p("author", "reference", "author"),
        _p("contenttype", "token", "content.attachment.contentType"),
    ],
    "ImagingStudy": _subject_params() + [
        _p("started", "date", "started"),
        _p("status", "token", "status"),
        _p("modality", "token", "series.modality"),
        _p("bodysite", "token", "series.bodySite"),
        _p("identifier", "token", "identifier"),
    ],
    "ServiceRequest": _subject_params() + [
        _p("code", "token", "code"),
        _p("category", "token", "category"),
        _p("status", "token", "status"),
        _p("intent", "token", "intent"),
        _p("priority", "token", "priority"),
        _p("authored", "date", "authoredOn"),
        _p("occurrence", "date", "occurrence[x]"),
        _p("requester", "reference", "requester"),
    ],
    # Shared resources: read and _include targets, searchable by name and identifier.
    "Organization": [
        _p("name", "string", "name", "alias"),
        _p("identifier", "token", "identifier"),
    ],
    "Practitioner": [
        _p("name", "string", "name"),
        _p("family", "string", "name.family"),
        _p("given", "string", "name.given"),
        _p("identifier", "token", "identifier"),
    ],
}

PARAMS: dict[str, dict[str, SearchParam]] = {
    rtype: {p.name: p for p in params} for rtype, params in _BY_TYPE.items()
}

#: Types a search may ask for. Other types (Claim, ExplanationOfBenefit, Goal...) are
#: stored, readable and counted, but searching them is refused with a clear message.
SEARCHABLE_TYPES = tuple(PARAMS)

#: Where each type points at the patient it belongs to (its Patient compartment).
COMPARTMENT_PATHS: tuple[str, ...] = ("subject", "patient", "beneficiary")

#: The token parameter that says *what* a clinical resource is, and its main date:
#: these feed the patient manifest (codes present, date ranges).
CODE_PARAM = {
    "Observation": "code", "Condition": "code", "MedicationRequest": "code",
    "Immunization": "vaccine-code", "Encounter": "type", "AllergyIntolerance": "code",
    "Procedure": "code", "DiagnosticReport": "code", "CarePlan": "category",
    "DocumentReference": "type", "ImagingStudy": "modality", "ServiceRequest": "code",
}
DATE_PARAM = {
    "Observation": "date", "Condition": "onset-date", "MedicationRequest": "authoredon",
    "Immunization": "date", "Encounter": "date", "AllergyIntolerance": "date",
    "Procedure": "date", "DiagnosticReport": "date", "CarePlan": "date",
    "DocumentReference": "date", "ImagingStudy": "started", "ServiceRequest": "authored",
    "Patient": "birthdate",
}


def lookup(resource_type: str, name: str) -> SearchParam | None:
    return PARAMS.get(resource_type, {}).get(name)
