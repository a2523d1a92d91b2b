"""EhrSession: the EHR tools the planner calls, bound to ONE patient.

Every tool returns a ``ToolResult`` (never raises). Scope is enforced here, in code: every
resource a tool returns passes ``in_scope`` (the bound Patient, resources in that patient's
compartment, shared resources such as Practitioner); searches always carry
``patient=<bound id>`` and refuse a caller's ``patient``/``subject``.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Callable, Literal

from tools.fhir.backend import FhirBackend, FhirError, NotFound
from tools.fhir.extract import compartment_patient, split_reference
from tools.fhir.manifest import Manifest, build_manifest, human_name
from tools.fhir.search_params import DATE_PARAM

from . import orders
from .categories import CLINICAL, STATUS_PARAM, clinical_type
from .names import ReferenceNames
from .resolve import Candidate, resolve_codes
from .results import RowNotes, ToolResult, concept_text, describe, render_rows, row, table
from .search_args import (Refused, date_params, explain_empty, prescribed_sentence, read_category, read_code,
                          read_filters)

ClinicalType = Literal["Observation", "Condition", "MedicationRequest", "Immunization", "Encounter",
                       "AllergyIntolerance", "Procedure", "DiagnosticReport", "CarePlan",
                       "DocumentReference", "ImagingStudy", "ServiceRequest"]
CLINICAL_TYPES: tuple[str, ...] = CLINICAL
SHARED_TYPES = frozenset({"Practitioner", "PractitionerRole", "Organization", "Location", "Medication",
                          "Substance", "HealthcareService", "Endpoint"})
DRAFT_KINDS = ("MedicationRequest", "ServiceRequest", "Observation")
NO_PATIENT = "no patient selected; call find_patient then bind"
MAX_LIMIT = 200
MAX_PAGE = 1000  # the most one search fetches (the store's _count bound), for filtering here
DEMOGRAPHICS = re.compile(r"^(the )?(patient'?s? )?(current )?(age|age in years|date of birth|birth ?date|dob|sex|gender|"
                          r"year of birth)$", re.I)
REDIRECT_TYPES = ("MedicationRequest", "Observation", "Immunization", "Procedure")  # see _type_naming


def _tool(fn: Callable[..., ToolResult]) -> Callable[..., ToolResult]:
    """Turn every failure into an error ToolResult; keep the signature and docstring."""
    @functools.wraps(fn)
    def wrapper(self: "EhrSession", *args: Any, **kwargs: Any) -> ToolResult:
        try:
            return fn(self, *args, **kwargs)
        except FhirError as exc:
            return ToolResult.fail(_diagnostics(exc))
        except (Refused, orders.DraftError, ValueError) as exc:  # ValueError: a bad type name or number
            return ToolResult.fail(str(exc))
        except Exception as exc:  # a tool never raises into the planner loop
            return ToolResult.fail(f"{fn.__name__} failed: {type(exc).__name__}: {exc}")
    return wrapper


def _diagnostics(exc: FhirError) -> str:
    issues = (exc.outcome or {}).get("issue", [])
    text = "; ".join(i.get("diagnostics") or i.get("code", "") for i in issues if isinstance(i, dict))
    return text or str(exc)


class EhrSession:
    """Tools over one patient's FHIR record. ``read_only`` (the default) forbids writes."""

    def __init__(self, backend: FhirBackend, patient_id: str | None = None, read_only: bool = True,
                 row_limit: int = 20):
        self.backend = backend
        self.read_only = read_only
        self.row_limit = row_limit
        self._pid: str | None = None
        self._patient: dict[str, Any] | None = None
        self._manifest: Manifest | None = None
        self._names = ReferenceNames(backend, self.in_scope)  # who prescribed, for what: names in rows
        self.now: str | None = None         # the run's reference date (ISO): ages are given as of it
        self.row_notes: RowNotes = {}       # per type, an 'images' cell for its rows (agent/knowledge.py)
        if patient_id:
            self.bind(patient_id)

    # -- binding and scope ------------------------------------------------------------------

    @property
    def patient_id(self) -> str | None:
        return self._pid

    def bind(self, patient_id: str) -> dict[str, Any]:
        """Bind the session to a patient (raises LookupError if there is no such Patient)."""
        ref = split_reference(patient_id.strip())
        if not ref or ref[0] not in (None, "Patient"):
            raise LookupError(f"'{patient_id}' is not a Patient id")
        try:
            patient = self.backend.read("Patient", ref[1])
        except NotFound:
            raise LookupError(f"Patient/{ref[1]} does not exist") from None
        self._pid, self._patient, self._manifest = ref[1], patient, None
        self._names = ReferenceNames(self.backend, self.in_scope)  # names read for another patient go
        return patient

    def in_scope(self, resource: dict[str, Any]) -> bool:
        """True only for the bound Patient, resources in its compartment and shared resources."""
        if self._pid is None or not isinstance(resource, dict):
            return False
        if resource.get("resourceType") == "Patient":
            return resource.get("id") == self._pid
        owner = compartment_patient(resource)
        if owner is not None:
            return owner == self._pid
        return resource.get("resourceType") in SHARED_TYPES

    def _scoped(self, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in resources if self.in_scope(r)]

    def _require_patient(self) -> str:
        if self._pid is None:
            raise Refused(NO_PATIENT)
        return self._pid

    def manifest(self) -> Manifest:
        if self._manifest is None:
            self._manifest = build_manifest(self.backend, self._require_patient())
        return self._manifest

    def banner(self) -> str:
        """The bound patient's one-line banner (citation id, sex, birth date, age as of ``now``):
        a planner reads age and sex from it without a tool call, as a clinician reads a chart's header."""
        return f"Patient/{self._require_patient()} | {self.manifest().demographics(self.now)}"

    def _candidates(self, *types: str) -> list[Candidate]:
        m = self.manifest()
        return [(c.system, c.code, c.display) for t in types for c in m.codes(t)]

    def tools(self) -> list[Callable[..., ToolResult]]:
        """The methods the planner may call (submit_order is deliberately not one).

        A session bound to a patient does not offer find_patient: it could only ever find the
        bound patient, and every tool the planner is shown costs prompt tokens on every turn.
        """
        bound = [self.patient_summary, self.search_records, self.read_record, self.draft_order]
        return bound if self._pid else [self.find_patient, *bound]

    # -- tools ------------------------------------------------------------------------------

    @_tool
    def find_patient(self, name: str | None = None, birth_date: str | None = None,
                     identifier: str | None = None, gender: str | None = None) -> ToolResult:
        """Find patients by name, birth date (YYYY-MM-DD), identifier (e.g. an MRN) or gender.

        Give at least one criterion; several narrow the search. Returns candidates with
        id, name, birth date, gender and MRN. Use the id to work on that patient.
        """
        params: list[tuple[str, str]] = [("name", p) for p in re.split(r"[\s,]+", name or "") if p]
        for param, value in (("birthdate", birth_date), ("identifier", identifier), ("gender", gender)):
            if value and str(value).strip():
                params.append((param, str(value).strip().lower() if param == "gender" else str(value).strip()))
        if not params:
            raise Refused("give at least one of name, birth_date, identifier, gender")
        if self._pid:  # a bound session can only ever see its own patient
            params.append(("_id", self._pid))
        bundle = self.backend.search("Patient", [*params, ("_count", str(self.row_limit))])
        found = [e["resource"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode", "match") == "match"]
        found = [p for p in found if p.get("resourceType") == "Patient" and (self._pid is None or self.in_scope(p))]
        if not found:
            return ToolResult(text="No patient matches; try fewer criteria (e.g. the family name only).")
        rows = [{"id": p["id"], "name": human_name(p.get("name")), "birth date": p.get("birthDate", ""),
                 "gender": p.get("gender", ""), "MRN": _mrn(p)} for p in found]
        total = bundle.get("total", len(found)) if self._pid is None else len(found)
        text = f"{len(found)} patient(s) found:\n" + table(rows, total, ("id", "name", "birth date", "gender", "MRN"))
        return ToolResult(text=text, ids=[f"Patient/{p['id']}" for p in found], resources=found)

    @_tool
    def patient_summary(self) -> ToolResult:
        """What the record holds (per type: count, dates, codes): call it when unsure where to look.

        Who the patient is, then for each record type: how many, the date range, and the
        codes present with their names (most frequent first); what to search for. Record
        types: Observation = lab results, vital signs, survey scores; Condition =
        diagnoses/problems; MedicationRequest = prescriptions; Immunization = vaccines;
        AllergyIntolerance = allergies; Encounter = visits; Procedure = procedures;
        DiagnosticReport = lab panels/reports; CarePlan = care plans; DocumentReference =
        clinical notes; ImagingStudy = imaging; ServiceRequest = orders/referrals.
        """
        pid = self._require_patient()
        return ToolResult(text=self.manifest().render(as_of=self.now), ids=[f"Patient/{pid}"],
                          resources=[self._patient] if self._patient else [])

    @_tool
    def search_records(self, resource_type: ClinicalType, code: str | None = None,
                       date_from: str | None = None, date_to: str | None = None,
                       status: str | None = None, category: str | None = None,
                       filters: dict[str, str] | None = None, sort: str = "-date",
                       limit: int | None = None) -> ToolResult:
        """Records of one type, newest first.

        resource_type: Observation (lab results, vital signs such as blood pressure, BMI,
        weight), Condition (diagnoses), MedicationRequest (medications), Immunization
        (vaccines), AllergyIntolerance (allergies), Encounter (visits), Procedure,
        DiagnosticReport (lab panels), CarePlan, DocumentReference (notes), ImagingStudy,
        ServiceRequest (orders).
        code: what to look for, as a plain name ('HbA1c', 'blood pressure', 'metformin',
        'flu shot') or a code ('4548-4', 'http://loinc.org|4548-4', comma = any of them); for
        MedicationRequest, a condition's name ('sinusitis') finds what was prescribed for it.
        date_from / date_to: YYYY, YYYY-MM or YYYY-MM-DD, inclusive.
        status: e.g. active, stopped, completed (for Condition/AllergyIntolerance: active,
        resolved, inactive). category: e.g. laboratory, vital-signs (Observation).
        filters: other FHIR search parameters, e.g. {"value-concept": "..."}.
        sort: '-date' newest first (default) or 'date' oldest first. limit: rows to show.
        """
        pid = self._require_patient()
        rtype = clinical_type(resource_type)
        reading = read_code(rtype, code, category, self._candidates, self._conditions_named)
        category, reasons, said = reading.category, reading.reasons, reading.said
        if reading.miss:
            return self._elsewhere(rtype, str(code), reading.miss, date_from, date_to, sort, limit)
        params: list[tuple[str, str]] = [("patient", pid), *reading.params]
        dates = date_params(rtype, date_from, date_to)
        params += dates
        said += [f"{k} {v}" for k, v in dates]
        # The reference date is "today": nothing recorded after it exists yet, so "latest" means
        # latest as of then (an evaluation set years back, a replayed run) without the planner
        # having to turn the date into a filter.
        date_param = DATE_PARAM[rtype]
        as_of = (date_param, "le" + self.now[:10]) if self.now else None
        if as_of:
            params.append(as_of)
            said.append(f"as of {self.now[:10]}")
        status_param = STATUS_PARAM.get(rtype, "status")
        if status and str(status).strip():
            params.append((status_param, ",".join(s.strip().lower() for s in str(status).split(","))))
            said.append(f"status {params[-1][1]}")
        if category and str(category).strip():
            cparam, note = read_category(rtype, str(category))
            if note:
                said.append(note)
            if cparam:
                params.append(cparam)
                said.append(f"{cparam[0]} {cparam[1]}")
        extra, notes, count, sort_given = read_filters(filters, pid)
        params += extra
        said += notes
        limit, sort = (count if count is not None else limit), (sort_given if sort_given is not None else sort)
        sort = {"newest": "-date", "oldest": "date"}.get((sort or "-date").strip().lower(), (sort or "-date").strip())
        if sort.lstrip("-") in ("date", date_param):
            sort = ("-" if sort.startswith("-") else "") + date_param
        n = max(1, min(int(limit or self.row_limit), MAX_LIMIT))
        # FHIR R4 has no search parameter for a MedicationRequest's reason: filter the patient's
        # requests here (tens, at most hundreds) by the reason references they carry.
        params += [("_sort", sort), ("_count", str(n if reasons is None else MAX_PAGE))]
        bundle = self.backend.search(rtype, params)
        entries = bundle.get("entry", [])
        matches = self._scoped([e["resource"] for e in entries if e.get("search", {}).get("mode", "match") == "match"])
        included = self._scoped([e["resource"] for e in entries if e.get("search", {}).get("mode") == "include"])
        total = bundle.get("total", len(matches)) - (sum(e.get("search", {}).get("mode", "match") == "match"
                                                        for e in entries) - len(matches))
        if reasons is not None:
            matches = [r for r in matches if {x.get("reference") for x in r.get("reasonReference", [])} & reasons]
            total, matches, included = len(matches), matches[:n], []
        order = {f"-{date_param}": "newest first", date_param: "oldest first"}.get(sort, f"sorted by {sort}")
        criteria = f" ({'; '.join(said)})" if said else ""
        if not matches and reasons is not None:
            return ToolResult(text=f"No {rtype} found{criteria}: none gives that condition as its reason.")
        if not matches:
            text = explain_empty(self.backend, rtype, params[:-2], criteria, total,
                                 {date_param, status_param, "category", "class"}, as_of)
            if reading.unknown_code:
                text += f" That code is not among the {rtype} codes this record holds; call patient_summary to see them."
            return ToolResult(text=text)
        # Rows found: their dates speak, and 'as of <reference date>' goes. The 1.5B default read
        # it as the day asked about and answered "no amoxicillin prescription on 2020-02-20"
        # above a row holding one (three times in 42 questions).
        shown = [x for x in said if not (self.now and x == f"as of {self.now[:10]}")]
        criteria = f" ({'; '.join(shown)})" if shown else ""
        named = self._names.fill(matches)
        text = f"{rtype}: {total} found, {order}{criteria}\n{render_rows(named, total, self.row_notes)}"
        if reasons is not None:  # the answer as a sentence first
            reference = f"{rtype}/{named[0].get('id')}"
            text = f"{prescribed_sentence(row(named[0]), reference)}\n{text}"
        if included:
            text += "\nincluded:\n" + table([{"type/id": f"{r['resourceType']}/{r.get('id')}",
                                              "name": human_name(r.get("name")) or r.get("name", "") or concept_text(r.get("code"))}
                                             for r in included], columns=("type/id", "name"))
        ids = [f"{r['resourceType']}/{r.get('id')}" for r in matches + included]
        return ToolResult(text=text, ids=ids, resources=matches + included)

    @_tool
    def read_record(self, reference: str) -> ToolResult:
        """One record in full ('Type/id'), e.g. a clinical note's text.

        reference: 'Type/id' as a tool result showed it (e.g. 'Observation/abc-123'). A
        clinical note (DocumentReference) comes with its text, a report with its results.
        """
        self._require_patient()
        target = split_reference(str(reference).strip())
        if not target or not target[0]:
            raise Refused(f"'{reference}' is not a reference; use 'Type/id', e.g. 'Observation/<id>'")
        try:
            resource = self.backend.read(*target)
        except NotFound:
            raise Refused(f"{target[0]}/{target[1]} does not exist") from None
        if not self.in_scope(resource):
            raise Refused(f"{target[0]}/{target[1]} is not part of the bound patient's record; refused")
        text = describe(self._names.fill([resource])[0])
        note = self.row_notes.get(target[0])
        cell = note(resource) if note else ""
        if cell:
            text += f"\nimages: {cell}"
        return ToolResult(text=text, ids=[f"{target[0]}/{target[1]}"],
                          resources=[resource])

    @_tool
    def draft_order(self, kind: Literal["MedicationRequest", "ServiceRequest", "Observation"], code: str,
                    display: str | None = None, system: str | None = None, dosage_text: str | None = None,
                    value: str | float | None = None, unit: str | None = None, reason: str | None = None,
                    note: str | None = None,
                    priority: Literal["routine", "urgent", "asap", "stat"] | None = None) -> ToolResult:
        """Draft (not place) an order, for a clinician to review.

        kind: MedicationRequest (a prescription; give dosage_text), ServiceRequest (a lab
        test, procedure or referral), or Observation (a vital sign only: give value and
        unit, blood pressure as value '128/82').
        code: a code ('4548-4', 'http://loinc.org|4548-4') or a name the record holds
        ('HbA1c', 'metformin'). system: LOINC, SNOMED or RxNorm when code is a bare code.
        reason: the condition it is for (e.g. 'diabetes'). Nothing is saved.
        """
        pid = self._require_patient()
        if kind not in DRAFT_KINDS:
            raise Refused(f"kind must be one of {', '.join(DRAFT_KINDS)}")
        patient_ref = f"Patient/{pid}"
        related = {"MedicationRequest": ("MedicationRequest",), "Observation": ("Observation",),
                   "ServiceRequest": ("ServiceRequest", "Observation", "Procedure")}[kind]
        sys_, cd, disp, how = orders.order_code(kind, str(code).strip(), display, system, self._candidates(*related))
        if kind == "Observation":
            resource = orders.vital_observation(patient_ref, cd or "", value, unit)
        else:
            reason_part = self._reason(reason) if reason else None
            concept = orders.concept(sys_, cd, disp)
            if kind == "MedicationRequest":
                resource = orders.medication_request(patient_ref, concept, dosage_text, reason_part, note, priority)
            else:
                resource = orders.service_request(patient_ref, concept, reason_part, note, priority)
        if kind == "Observation" and note:
            resource["note"] = [{"text": note}]
        orders.validate(resource)
        text = (f"DRAFT {kind} (not saved; a clinician must review and submit it){'; ' + how if how else ''}\n"
                + describe(resource).split("\n", 1)[-1])
        return ToolResult(text=text, ids=[], resources=[resource])

    @_tool
    def submit_order(self, draft: dict[str, Any], confirm: bool = False) -> ToolResult:
        """Store a draft (from draft_order) in the record. Not a planner tool: refused unless
        confirm=True, the session is writable (read_only=False) and the draft is for the
        bound patient."""
        pid = self._require_patient()
        if self.read_only:
            raise Refused("refused: this session is read-only; nothing was written")
        if confirm is not True:
            raise Refused("refused: submitting needs confirm=True from a clinician; nothing was written")
        if not isinstance(draft, dict) or draft.get("resourceType") not in DRAFT_KINDS:
            raise Refused(f"refused: only {', '.join(DRAFT_KINDS)} drafts can be submitted")
        if compartment_patient(draft) != pid:
            raise Refused("refused: the draft is not for the bound patient")
        orders.validate(draft)
        stored = self.backend.create(draft)
        self._manifest = None
        ref = f"{stored['resourceType']}/{stored['id']}"
        return ToolResult(text=f"stored {ref}\n{describe(stored).split(chr(10), 1)[-1]}", ids=[ref], resources=[stored])

    # -- helpers ----------------------------------------------------------------------------

    def _elsewhere(self, rtype: str, code: str, miss: str, date_from: str | None, date_to: str | None,
                   sort: str, limit: int | None) -> ToolResult:
        """A name no record of ``rtype`` matches: the records of the type it does reach, shown
        first (small models repeat a result's first line) with a note naming what was found,
        not what was not (the 1.5B default repeated "No Observation matches 'oxycodone'" as its
        answer); else ``miss``."""
        if DEMOGRAPHICS.match(code.strip()):
            # "How old is the patient?" searched as Observation 'age' (5 of 5 held-out age
            # questions, past the banner in the question turn): the Patient record answers it.
            return ToolResult(text=f"{self.banner()}\n(Searched as {rtype}: '{code}' is on the Patient record, "
                                   "shown above.)", ids=[f"Patient/{self.patient_id}"])
        other = self._type_naming(code, rtype)
        if other:
            found = self.search_records(other, code=code, date_from=date_from, date_to=date_to, sort=sort, limit=limit)
            return found.model_copy(update={"text": f"{found.text}\n(Searched as {rtype}: '{code}' is in these "
                                                    f"{other} records.)"})
        if rtype in REDIRECT_TYPES and rtype != "MedicationRequest":
            # A condition's name searched as a test or a procedure ("the drug last ordered to
            # treat her hyperlipidemia", searched as an Observation): what was prescribed for it.
            # (A MedicationRequest search tried that already, in read_code: searching it again
            # from here recursed until Python's limit, ~0.8 s a miss.)
            found = self.search_records("MedicationRequest", code=code, date_from=date_from, date_to=date_to,
                                        sort=sort, limit=limit)
            if found.ids:
                return found.model_copy(update={"text": f"{found.text}\n(Searched as {rtype}: '{code}' is a "
                                                        "condition; these MedicationRequest records were "
                                                        "prescribed for it.)"})
        return ToolResult(text=miss)

    def _type_naming(self, text: str, asked: str) -> str | None:
        """Another record type whose codes a name reaches, when the asked one's do not: "oxycodone"
        searched as an Observation is a MedicationRequest. Only among what is measured, given
        or done (REDIRECT_TYPES): a Condition or allergy question that finds nothing must stay
        a 'no', never become another type's 'yes'."""
        if asked not in REDIRECT_TYPES:
            return None
        for other in REDIRECT_TYPES:
            if other != asked and resolve_codes(text, self._candidates(other)).ok:
                return other
        return None

    def _conditions_named(self, text: str) -> tuple[set[str], str]:
        """The patient's Conditions a name reaches ('viral sinusitis'), as references, and the
        names matched: a medication search given a condition's name means 'prescribed for it'."""
        conditions, res = self._conditions_matching(text, MAX_PAGE)
        return {f"Condition/{c['id']}" for c in conditions}, "; ".join(
            dict.fromkeys(m.display or m.code for m in res.matches))  # names, not codes

    def _conditions_matching(self, text: str, count: int) -> tuple[list[dict[str, Any]], Any]:
        """The bound patient's Conditions whose codes ``text`` resolves to (at most ``count``)."""
        res = resolve_codes(text, self._candidates("Condition"))
        if not res.ok:
            return [], res
        found = self.backend.search("Condition", [("patient", self._require_patient()),
                                                  ("code", res.param_value()), ("_count", str(count))])
        return self._scoped([e["resource"] for e in found.get("entry", [])]), res

    def _reason(self, reason: str) -> dict[str, Any]:
        """reasonReference to the patient's matching Condition, else reasonCode as text."""
        conditions, _ = self._conditions_matching(reason, 1)
        if conditions:
            c = conditions[0]
            return {"reasonReference": [{"reference": f"Condition/{c['id']}", "display": concept_text(c.get("code"))}]}
        return {"reasonCode": [{"text": reason}]}


def _mrn(patient: dict[str, Any]) -> str:
    for ident in patient.get("identifier", []):
        codes = {c.get("code") for c in ident.get("type", {}).get("coding", [])}
        if "MR" in codes or "mrn" in str(ident.get("system", "")).lower():
            return ident.get("value", "")
    return ""
