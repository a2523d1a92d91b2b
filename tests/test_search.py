"""FHIR search semantics of the embedded store, checked against the R4 specification's rules.

Hand-made resources pin the edge cases (date precision and prefixes, token forms, string
matching, paging); the fixture patients check the searches an EHR agent makes.
"""

from __future__ import annotations

import json

import pytest

from fhir_fixtures import PATIENTS, bundle_paths
from tools.fhir import FhirError
from tools.fhir.store import EmbeddedStore

from stores import BACKENDS, new_store

MARIA = PATIENTS["diabetic"]
HBA1C = "http://loinc.org|4548-4"


def _obs(oid: str, when: dict | str, code: str = "4548-4", patient: str = "p1", status: str = "final",
         category: str = "laboratory") -> dict:
    resource = {
        "resourceType": "Observation", "id": oid, "status": status,
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": f"code {code}"}]},
        "subject": {"reference": f"Patient/{patient}"},
    }
    if isinstance(when, dict):
        resource["effectivePeriod"] = when
    else:
        resource["effectiveDateTime"] = when
    return resource


HANDMADE = [
    {"resourceType": "Patient", "id": "p1", "name": [{"family": "Müller", "given": ["Zoë", "Ann"]}],
     "gender": "female", "birthDate": "1980-05-17",
     "identifier": [{"system": "http://hospital.example.org/mrn", "value": "MRN-1"}]},
    {"resourceType": "Patient", "id": "p2", "name": [{"family": "Mullerton", "given": ["Bob"]}],
     "gender": "male", "birthDate": "1980",
     "identifier": [{"system": "http://other.example.org/id", "value": "MRN-1"}]},
    _obs("o-2019", "2019-12-31T23:59:59+00:00"),
    _obs("o-2020a", "2020-01-01T00:00:00+00:00"),
    _obs("o-2020b", "2020-06-15T10:30:00+00:00", code="2339-0"),
    _obs("o-2020tz", "2020-12-31T22:00:00-05:00"),       # = 2021-01-01T03:00Z
    _obs("o-2021", "2021-03-01", status="amended"),      # day precision
    _obs("o-span", {"start": "2019-12-30", "end": "2020-01-02"}, code="8480-6", category="vital-signs"),
    _obs("o-open", {"start": "2022-01-01"}, code="8480-6", category="vital-signs"),
    _obs("o-other", "2020-06-15T10:30:00+00:00", patient="p2"),
]


@pytest.fixture(scope="module", params=BACKENDS)
def hand(request, tmp_path_factory) -> EmbeddedStore:
    path = tmp_path_factory.mktemp("hand") / "bundle.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                "entry": [{"resource": r} for r in HANDMADE]}))
    store = new_store(request.param, path.parent, "search_hand")
    report = store.load_paths([path])
    assert report.errors == [] and report.resources == len(HANDMADE)
    return store


@pytest.fixture(scope="module", params=BACKENDS)
def fixtures(request, tmp_path_factory) -> EmbeddedStore:
    store = new_store(request.param, tmp_path_factory.mktemp("fx"), "search_fixtures")
    assert store.load_paths(bundle_paths()).errors == []
    return store


def ids(store: EmbeddedStore, query: str) -> list[str]:
    bundle = store.search_query(query)
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def idset(store, query):
    return set(ids(store, query))


# -- dates ----------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("2020", {"o-2020a", "o-2020b"}),                     # o-2020tz is 2021 in UTC; spans not contained
    ("eq2020-06", {"o-2020b"}),
    ("2020-06-15", {"o-2020b"}),
    ("2020-06-15T10:30:00Z", {"o-2020b"}),
    ("2020-06-15T10:30:00+00:00", {"o-2020b"}),
    ("2020-06-15T12:30:00+02:00", {"o-2020b"}),           # same instant, other zone
    ("2020-06-15T10:30", {"o-2020b"}),                    # minute precision is a one-minute range
    ("2021-03-01T12:00:00Z", set()),                      # day-precision target is not inside one second
])
def test_date_eq_is_containment_at_the_value_precision(hand, value, expected):
    assert idset(hand, f"Observation?patient=p1&date={value}") == expected


@pytest.mark.parametrize("value, expected", [
    # gt: some of the target lies after the search range; an open-ended period always does.
    ("gt2020", {"o-2020tz", "o-2021", "o-open"}),
    ("ge2020", {"o-2020a", "o-2020b", "o-2020tz", "o-2021", "o-open"}),
    ("lt2020", {"o-2019", "o-span"}),
    ("le2020", {"o-2019", "o-span", "o-2020a", "o-2020b"}),
    ("lt2020-01-01T00:00:00Z", {"o-2019", "o-span"}),
    ("le2019-12-31T23:59:59Z", {"o-2019", "o-span"}),
    ("gt2019-12-31T23:59:59Z", {"o-2020a", "o-2020b", "o-2020tz", "o-2021", "o-span", "o-open"}),
    ("sa2020", {"o-2020tz", "o-2021", "o-open"}),
    ("eb2020", {"o-2019"}),
    ("ne2020", {"o-2019", "o-2020tz", "o-2021", "o-span", "o-open"}),
])
def test_date_prefixes_follow_the_specification(hand, value, expected):
    assert idset(hand, f"Observation?patient=p1&date={value}") == expected


def test_repeated_date_parameters_and_and_commas_or(hand):
    # o-span (2019-12-30..2020-01-02) reaches past 2020-01-01 (ge) and starts before July (lt).
    assert idset(hand, "Observation?patient=p1&date=ge2020-01-01&date=lt2020-07") == {"o-2020a", "o-2020b", "o-span"}
    assert idset(hand, "Observation?patient=p1&date=ge2020-01-03&date=lt2020-07") == {"o-2020b"}
    assert idset(hand, "Observation?patient=p1&date=2019,2021") == {"o-2019", "o-2020tz", "o-2021"}


def test_partial_birthdate_is_a_range(hand):
    assert idset(hand, "Patient?birthdate=1980") == {"p1", "p2"}
    assert idset(hand, "Patient?birthdate=1980-05") == {"p1"}      # p2's "1980" is not inside May
    assert idset(hand, "Patient?birthdate=ge1980-06") == {"p2"}    # "1980" reaches past June


def test_bad_dates_are_refused(hand):
    for value in ("2020-13", "20200101", "yesterday", "ap2020"):
        with pytest.raises(FhirError) as exc:
            hand.search_query(f"Observation?date={value}")
        assert exc.value.status == 400 and exc.value.outcome["resourceType"] == "OperationOutcome"


# -- tokens, references, strings --------------------------------------------------------------

def test_token_forms(hand):
    assert "o-2020b" not in idset(hand, "Observation?code=4548-4")
    assert idset(hand, "Observation?patient=p1&code=http://loinc.org|2339-0") == {"o-2020b"}
    assert idset(hand, "Observation?patient=p1&code=http://snomed.info/sct|2339-0") == set()
    assert idset(hand, "Observation?patient=p1&code=|2339-0") == set()     # no system: none here
    assert len(idset(hand, "Observation?patient=p1&code=http://loinc.org|")) == 7
    assert idset(hand, "Observation?patient=p1&code=2339-0,8480-6") == {"o-2020b", "o-span", "o-open"}
    assert idset(hand, "Observation?patient=p1&code:not=4548-4") == {"o-2020b", "o-span", "o-open"}
    assert idset(hand, "Observation?patient=p1&code:text=code 2339") == {"o-2020b"}
    assert idset(hand, "Observation?patient=p1&status=amended") == {"o-2021"}
    assert idset(hand, "Observation?patient=p1&category=vital-signs") == {"o-span", "o-open"}


def test_reference_forms(hand):
    every = idset(hand, "Observation?patient=p1")
    assert "o-other" not in every and len(every) == 7
    assert idset(hand, "Observation?patient=Patient/p1") == every
    assert idset(hand, "Observation?subject=Patient/p1") == every
    assert idset(hand, "Observation?subject:Patient=p1") == every
    assert idset(hand, "Observation?patient=http://elsewhere.example/fhir/Patient/p1") == every
    assert idset(hand, "Observation?patient=p1,p2") == every | {"o-other"}


def test_string_search_is_prefix_case_and_accent_insensitive(hand):
    assert idset(hand, "Patient?family=muller") == {"p1", "p2"}
    assert idset(hand, "Patient?family:exact=Müller") == {"p1"}
    assert idset(hand, "Patient?family:exact=muller") == set()
    assert idset(hand, "Patient?given=zoe") == {"p1"}
    assert idset(hand, "Patient?name=ann") == {"p1"}
    assert idset(hand, "Patient?name:contains=lert") == {"p2"}
    assert idset(hand, "Patient?gender=male") == {"p2"}
    assert idset(hand, "Patient?identifier=MRN-1") == {"p1", "p2"}
    assert idset(hand, "Patient?identifier=http://hospital.example.org/mrn|MRN-1") == {"p1"}


def test_sql_metacharacters_are_data(hand):
    assert idset(hand, "Patient?family=%") == set()
    assert idset(hand, "Patient?family=_uller") == set()
    assert idset(hand, "Patient?family=x' OR '1'='1") == set()
    assert idset(hand, "Observation?code=4548-4'; DROP TABLE resources; --") == set()
    assert hand.stats()["Patient"] == 2


# -- result parameters ------------------------------------------------------------------------

def test_sort_and_paging(hand):
    newest_first = ids(hand, "Observation?patient=p1&code=4548-4&_sort=-date")
    assert newest_first == ["o-2021", "o-2020tz", "o-2020a", "o-2019"]
    assert ids(hand, "Observation?patient=p1&code=4548-4&_sort=date") == newest_first[::-1]
    first = hand.search_query("Observation?patient=p1&code=4548-4&_sort=-date&_count=3")
    assert [e["resource"]["id"] for e in first["entry"]] == newest_first[:3] and first["total"] == 4
    nxt = [link["url"] for link in first["link"] if link["relation"] == "next"][0]
    second = hand.fetch_page(nxt)
    assert [e["resource"]["id"] for e in second["entry"]] == newest_first[3:]
    assert not [link for link in second["link"] if link["relation"] == "next"]
    everything = hand.search_all("Observation", [("patient", "p1"), ("_sort", "-date")])
    assert everything["total"] == 7 and len(everything["entry"]) == 7


def test_summary_count_and_count_zero(hand):
    bundle = hand.search_query("Observation?patient=p1&_summary=count")
    assert bundle["total"] == 7 and "entry" not in bundle
    assert hand.search_query("Observation?patient=p1&_count=0")["entry"] == []


@pytest.mark.parametrize("query, fragment", [
    ("Observation?foo=bar", "unknown search parameter 'foo'"),
    ("Observation?code:fuzzy=1", "modifier ':fuzzy'"),
    ("Observation?_sort=subject", "cannot sort"),
    ("Observation?_count=abc", "must be an integer"),
    ("Observation?_count=5000", "between"),
    ("Observation?subject.name=x", "chained"),
    ("Observation?patient=", "empty value"),
    ("Observation?_include=Patient:organization", "source type must be Observation"),
    ("Observation?_summary=true", "_summary=true"),
    ("Observation?_count=5&_count=10", "'_count' may appear only once"),
    ("Observation?_sort=date&_sort=-date", "'_sort' may appear only once"),
    ("Claim?patient=p1", "not supported"),
    ("Observation?patient=Practitioner/x", "refers to Patient"),
])
def test_bad_queries_are_refused_with_an_operation_outcome(hand, query, fragment):
    with pytest.raises(FhirError) as exc:
        hand.search_query(query)
    assert fragment in str(exc.value)
    issue = exc.value.outcome["issue"][0]
    assert issue["severity"] == "error" and fragment in issue["diagnostics"]


# -- the fixture patients: the searches an agent makes ----------------------------------------

def test_hba1c_series_newest_first(fixtures):
    bundle = fixtures.search_all("Observation", [("patient", MARIA.id), ("code", HBA1C), ("_sort", "-date")])
    dates = [e["resource"]["effectiveDateTime"] for e in bundle["entry"]]
    assert bundle["total"] == 12 and len(dates) == 12 and dates == sorted(dates, reverse=True)
    assert all(e["resource"]["subject"]["reference"] == f"Patient/{MARIA.id}" for e in bundle["entry"])


def test_include_requester_and_reference_targets(fixtures):
    bundle = fixtures.search_query(f"MedicationRequest?patient={MARIA.id}&status=active&_include=MedicationRequest:requester")
    matches = [e for e in bundle["entry"] if e["search"]["mode"] == "match"]
    included = [e for e in bundle["entry"] if e["search"]["mode"] == "include"]
    assert len(matches) == bundle["total"] >= 2
    assert included and {e["resource"]["resourceType"] for e in included} == {"Practitioner"}
    wanted = {m["resource"]["requester"]["reference"] for m in matches}
    assert {f"Practitioner/{e['resource']['id']}" for e in included} == wanted


def test_condition_clinical_status_and_onset(fixtures):
    active = fixtures.resources("Condition", [("patient", MARIA.id), ("clinical-status", "active")])
    assert any(c["code"]["coding"][0]["code"] == "44054006" for c in active)
    assert fixtures.resources("Condition", [("patient", MARIA.id), ("onset-date", "lt1900")]) == []


def test_immunization_vaccine_code_and_date(fixtures):
    flu = fixtures.resources("Immunization", [("patient", MARIA.id), ("vaccine-code", "http://hl7.org/fhir/sid/cvx|140")])
    assert flu and all(i["vaccineCode"]["coding"][0]["code"] == "140" for i in flu)
    year = flu[0]["occurrenceDateTime"][:4]
    in_year = fixtures.resources("Immunization", [("patient", MARIA.id), ("vaccine-code", "140"), ("date", year)])
    assert in_year and all(i["occurrenceDateTime"].startswith(year) for i in in_year)


def test_encounter_class_and_inpatient_period(fixtures):
    ckd = PATIENTS["ckd_hf"].id
    inpatient = fixtures.resources("Encounter", [("patient", ckd), ("class", "IMP")])
    assert len(inpatient) == 1
    start = inpatient[0]["period"]["start"][:10]
    # A multi-day stay is not contained in its first day, but it overlaps the day after (gt).
    assert fixtures.resources("Encounter", [("patient", ckd), ("class", "IMP"), ("date", start)]) == []
    assert fixtures.resources("Encounter", [("patient", ckd), ("class", "IMP"), ("date", f"gt{start}")]) == inpatient
