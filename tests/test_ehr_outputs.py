"""What the EHR tools show so that every EHRQA category is answerable in one or two calls:
names instead of bare ids (who prescribed, what for), and empty results that explain
themselves. Runs against a real embedded store loaded with the fixture patients."""

from __future__ import annotations

import re

import pytest

from fhir_fixtures import PATIENTS, bundle_paths
from tools.ehr import EhrSession
from tools.ehr.search_args import read_code
from tools.fhir.store import EmbeddedStore

MARIA = PATIENTS["diabetic"]


def _rows(text: str) -> list[dict[str, str]]:
    """Parse a tool table (with its optional 'all rows:' line) into dicts by column name."""
    lines = text.splitlines()
    shared: dict[str, str] = {}
    for line in lines:
        if line.startswith("all rows: "):
            for part in line[len("all rows: "):].split("; "):
                key, _, value = part.partition(" ")
                shared[key] = value
    header_at = next(i for i, line in enumerate(lines) if line.startswith("date | "))
    cols = lines[header_at].split(" | ")
    rows = []
    for line in lines[header_at + 1:]:
        if line.startswith("("):
            break
        rows.append({**shared, **dict(zip(cols, line.split(" | ")))})
    return rows


@pytest.fixture()
def bare_refs_store(tmp_path):
    """The fixtures plus a MedicationRequest whose references are bare ids, as Synthea's are."""
    s = EmbeddedStore(f"sqlite:///{tmp_path / 'bare.db'}")
    assert not s.load_paths(bundle_paths()).errors
    med = EhrSession(s, patient_id=MARIA.id).search_records("MedicationRequest", code="metformin").resources[0]
    bare = {k: v for k, v in med.items() if k not in ("id", "meta")}
    bare["requester"] = {"reference": med["requester"]["reference"]}
    bare["reasonReference"] = [{"reference": r["reference"]} for r in med["reasonReference"]]
    bare["authoredOn"] = "2025-07-01"
    stored = s.create(bare)
    yield s, stored
    s.close()


def test_medication_rows_name_the_prescriber_and_the_reason(bare_refs_store):
    store, stored = bare_refs_store
    session = EhrSession(store, patient_id=MARIA.id)
    result = session.search_records("MedicationRequest", code="metformin", limit=1)
    assert result.ok, result.error
    assert result.ids == [f"MedicationRequest/{stored['id']}"]
    row = _rows(result.text)[0]
    practitioner = store.read(*stored["requester"]["reference"].split("/"))
    assert practitioner["name"][0]["family"] in row["by"]
    assert row["reason"] == "Diabetes mellitus type 2 (disorder)"
    assert "Practitioner/" not in result.text  # names, not ids; the stored resource is untouched
    assert "display" not in store.read("MedicationRequest", stored["id"])["requester"]


def test_read_record_resolves_references_to_names(bare_refs_store):
    store, stored = bare_refs_store
    text = EhrSession(store, patient_id=MARIA.id).read_record(f"MedicationRequest/{stored['id']}").text
    requester = re.search(r"^requester: (.+)$", text, re.M).group(1)
    assert requester.startswith("Helen Marsh (Practitioner/")
    assert re.search(r"^reasonReference: Diabetes mellitus type 2 \(disorder\) \(Condition/", text, re.M)


def test_names_never_come_from_another_patients_record(store):
    """A reference into another patient's record (bad data or an attack) gets no name."""
    session = EhrSession(store, patient_id=MARIA.id)
    other = EhrSession(store, patient_id=PATIENTS["cardiometabolic"].id)
    foreign = other.search_records("Condition").resources[0]
    assert session._names.name(f"Condition/{foreign['id']}") == ""
    own = session.search_records("Condition").resources[0]
    assert session._names.name(f"Condition/{own['id']}")


def test_an_empty_result_says_what_lies_outside_the_filters(store):
    session = EhrSession(store, patient_id=MARIA.id)
    everything = session.search_records("Observation", code="HbA1c", limit=200)
    dates = sorted(r["date"] for r in _rows(everything.text))
    empty = session.search_records("Observation", code="HbA1c", date_from="2099")
    assert empty.ok and not empty.ids
    assert f"the record holds {len(dates)}" in empty.text
    assert f"the newest {dates[-1]}" in empty.text and f"the oldest {dates[0]}" in empty.text
    assert "date_from" in empty.text
    # nothing outside the filters either: said plainly
    none = session.search_records("Immunization", code="influenza", date_from="2099", status="not-done")
    assert none.ok and not none.ids


def test_an_empty_result_without_filters_stays_short(store):
    session = EhrSession(store, patient_id=PATIENTS["asthma_child"].id)
    result = session.search_records("MedicationRequest", status="entered-in-error")
    assert "Outside these filters the record holds" in result.text or "none outside" in result.text
    plain = session.search_records("ImagingStudy")
    assert "Outside these filters" not in plain.text


def test_an_order_for_a_panel_name_is_drafted_as_text_not_as_one_member(store):
    session = EhrSession(store, patient_id=MARIA.id)
    panel = session.draft_order("ServiceRequest", "lipid panel")
    assert panel.ok and "drafted as text only" in panel.text
    assert "coding" not in panel.resources[0]["code"] and panel.resources[0]["code"]["text"] == "lipid panel"
    single = session.draft_order("ServiceRequest", "HbA1c")
    assert single.resources[0]["code"]["coding"][0]["code"] == "4548-4"


def test_the_summary_gives_the_age_as_of_the_reference_date(store):
    session = EhrSession(store, patient_id=MARIA.id)   # born 1962-04-17
    session.now = "2019-04-16T10:00:00+00:00"
    assert "age 56 on 2019-04-16" in session.patient_summary().text
    session.now = "2019-04-17"
    assert "age 57 on 2019-04-17" in session.patient_summary().text
    session.now = None
    assert re.search(r"\| age \d+\n", session.patient_summary().text)


def test_searches_see_the_record_as_of_the_reference_date(store):
    session = EhrSession(store, patient_id=MARIA.id)
    rows = _rows(session.search_records("Observation", code="HbA1c", limit=200).text)
    dates = sorted(r["date"] for r in rows)
    session.now = dates[-3] + "T12:00:00+00:00"   # two measurements lie after 'today'
    result = session.search_records("Observation", code="HbA1c", limit=1)
    assert _rows(result.text)[0]["date"] == dates[-3]
    assert "as of" not in result.text.splitlines()[0]   # rows found: a small model read it as the day asked about
    empty = session.search_records("Observation", code="HbA1c", date_from="2099")
    assert f"as of {dates[-3]}" in empty.text           # none found: the reference date says why
    # nothing after today is offered as a way out: only what exists as of the reference date
    assert f"the record holds {len(dates) - 2}" in empty.text


def test_an_empty_result_counts_what_a_category_filter_hid(store):
    session = EhrSession(store, patient_id=MARIA.id)
    result = session.search_records("MedicationRequest", code="metformin", category="inpatient")
    assert not result.ids and "Outside these filters the record holds" in result.text and "category" in result.text


def test_a_condition_name_in_a_medication_search_finds_what_was_prescribed_for_it(store):
    """'What was prescribed for diabetes?' searched as code='diabetes' (what small models do):
    the rows are the requests whose reason is that condition, not 'no match'."""
    session = EhrSession(store, patient_id=MARIA.id)
    conditions = {f"Condition/{r['id']}" for r in session.search_records("Condition", code="diabetes").resources}
    found = session.search_records("MedicationRequest", code="type 2 diabetes")
    assert found.error is None and found.resources, found.text
    first = found.resources[0]
    # the newest as a sentence first (a 1.5B planner answered "none" from the table alone), then the table
    assert found.text.splitlines()[0].endswith(f"(MedicationRequest/{first['id']}).")
    assert " was prescribed on " in found.text.splitlines()[0] and " for Diabetes" in found.text.splitlines()[0]
    assert found.text.splitlines()[1].startswith("MedicationRequest: ") and "(prescribed for Diabetes" in found.text
    for med in found.resources:   # every row names one of those conditions as its reason
        assert {r["reference"] for r in med["reasonReference"]} & conditions
    # All requests carrying such a reason are found, and none without one.
    every = store.resources("MedicationRequest", [("patient", MARIA.id), ("_count", "1000")])
    expected = {m["id"] for m in every if {r["reference"] for r in m.get("reasonReference", [])} & conditions}
    assert {m["id"] for m in found.resources} == expected
    # A name that is neither a drug nor a condition of hers still says so.
    assert "matches 'glaucoma'" in session.search_records("MedicationRequest", code="glaucoma").text


def test_a_category_the_type_does_not_define_is_ignored_and_said(store):
    session = EhrSession(store, patient_id=MARIA.id)
    plain = session.search_records("MedicationRequest", code="metformin")
    guessed = session.search_records("MedicationRequest", code="metformin", category="medication")
    assert guessed.ids == plain.ids and guessed.ids
    assert "category medication ignored: MedicationRequest categories are inpatient, outpatient" in guessed.text
    vaccines = session.search_records("Immunization", category="vaccine")
    assert vaccines.error is None and vaccines.ids == session.search_records("Immunization").ids
    assert "Immunization has no category" in vaccines.text
    # A real category (by alias too) still filters; a mix keeps the real part.
    labs = session.search_records("Observation", category="labs", limit=200)
    assert labs.resources and all(any(c["code"] == "laboratory" for cat in r["category"] for c in cat["coding"])
                                  for r in labs.resources)
    mixed = session.search_records("Observation", category="labs,medication", limit=200)
    assert mixed.ids == labs.ids and "category medication ignored" in mixed.text


def test_a_patient_filter_naming_the_bound_patient_is_redundant_not_refused(store):
    session = EhrSession(store, patient_id=MARIA.id)
    plain = session.search_records("Condition")
    assert session.search_records("Condition", filters={"patient": f"Patient/{MARIA.id}"}).ids == plain.ids
    other = session.search_records("Condition", filters={"patient": PATIENTS["asthma_child"].id})
    assert other.error and "bound to one patient" in other.error and not other.ids


def test_a_drug_searched_as_an_observation_shows_the_prescriptions_and_says_so(store):
    session = EhrSession(store, patient_id=MARIA.id)
    meds = session.search_records("MedicationRequest", code="metformin")
    wrong_type = session.search_records("Observation", code="metformin")
    assert wrong_type.ids == meds.ids and meds.ids
    assert wrong_type.text.startswith("MedicationRequest: ")   # the records first: small models repeat line one
    assert wrong_type.text.endswith("(Searched as Observation: 'metformin' is in these MedicationRequest records.)")
    # A diagnosis question that finds nothing stays a 'no': no redirect away from Condition.
    none = session.search_records("Condition", code="metformin")
    assert not none.ids and "shown instead" not in none.text


def test_a_condition_searched_as_a_test_shows_what_was_prescribed_for_it(store, monkeypatch):
    session = EhrSession(store, patient_id=MARIA.id)
    prescribed = session.search_records("MedicationRequest", code="type 2 diabetes")
    as_test = session.search_records("Observation", code="type 2 diabetes")
    assert as_test.ids == prescribed.ids and prescribed.ids
    assert as_test.text.startswith(prescribed.text.splitlines()[0])      # the prescription sentence first
    assert as_test.text.endswith("(Searched as Observation: 'type 2 diabetes' is a condition; these "
                                 "MedicationRequest records were prescribed for it.)")
    # A name nothing reaches is one plain miss, searched a bounded number of times (it once
    # recursed through this redirect until Python's limit, hidden by the tool wrapper).
    import tools.ehr.session as session_module

    readings = []
    monkeypatch.setattr(session_module, "read_code", lambda *a, **k: readings.append(a[0]) or read_code(*a, **k))
    for rtype in ("MedicationRequest", "Observation"):
        readings.clear()
        miss = session.search_records(rtype, code="xyzzy quux")
        assert miss.text.startswith(f"No {rtype} in this patient's record matches") and not miss.error
        assert len(readings) <= 2
    # A condition nothing was prescribed for stays a plain miss.
    bare = EhrSession(store, patient_id=PATIENTS["asthma_child"].id)
    miss = bare.search_records("Observation", code="type 2 diabetes")
    assert not miss.ids and miss.text.startswith("No Observation in this patient's record matches")


@pytest.mark.parametrize("code", ["age", "Age", "date of birth", "the patient's age", "sex"])
def test_a_demographic_searched_as_a_record_shows_the_patient_banner(store, code):
    session = EhrSession(store, patient_id=MARIA.id)
    found = session.search_records("Observation", code=code)
    assert found.text.splitlines()[0] == session.banner() and found.ids == [f"Patient/{MARIA.id}"]
    assert found.text.endswith(f"(Searched as Observation: '{code}' is on the Patient record, shown above.)")
    assert not session.search_records("Observation", code="agent orange exposure").ids   # a word inside a name is not it


def test_a_code_that_names_the_whole_type_is_no_filter(store):
    session = EhrSession(store, patient_id=MARIA.id)
    every = session.search_records("Encounter", date_from="2024", date_to="2024")
    visits = session.search_records("Encounter", code="visits", date_from="2024", date_to="2024")
    assert visits.ids == every.ids and every.ids
    assert "'visits' names every Encounter: no code filter" in visits.text
    assert session.search_records("Immunization", code="vaccine").ids == session.search_records("Immunization").ids
    # A real name still filters.
    assert set(session.search_records("Immunization", code="flu shot").ids) < set(session.search_records("Immunization").ids)


def test_a_code_that_is_a_category_is_searched_as_the_category(store):
    session = EhrSession(store, patient_id=MARIA.id)
    outpatient = session.search_records("Encounter", code="outpatient visits", limit=200)
    assert outpatient.ids and outpatient.ids == session.search_records("Encounter", category="AMB", limit=200).ids
    assert "'outpatient visits' is a category: searched as one" in outpatient.text
    labs = session.search_records("Observation", code="labs", limit=200)
    assert labs.ids == session.search_records("Observation", category="laboratory", limit=200).ids
