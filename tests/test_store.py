"""Loading bundles into the embedded store: ids kept, references resolved, atomic files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fhir_fixtures import ORGANIZATIONS, PATIENTS, bundle_paths
from tools.fhir import FhirError, NotFound
from tools.fhir.schema import INDEX_TABLES
from tools.fhir.store import EmbeddedStore

from stores import BACKENDS, new_store

MARIA = PATIENTS["diabetic"]


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path) -> EmbeddedStore:
    return new_store(request.param, tmp_path, f"store_{request.node.name}")


def _bundle(entries: list[dict], btype: str = "transaction") -> dict:
    return {"resourceType": "Bundle", "type": btype, "entry": entries}


def _write(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def _index_rows(store: EmbeddedStore) -> int:
    with store.engine.connect() as conn:
        return sum(conn.execute(select(func.count()).select_from(t)).scalar_one() for t in INDEX_TABLES)


def _patient_entry(pid="p1", family="Doe") -> dict:
    return {"fullUrl": f"urn:uuid:{pid}", "request": {"method": "POST", "url": "Patient"},
            "resource": {"resourceType": "Patient", "id": pid, "name": [{"family": family}]}}


def _obs_entry(oid: str, code="4548-4", subject="urn:uuid:p1", when="2020-01-01T00:00:00Z") -> dict:
    return {"fullUrl": f"urn:uuid:{oid}", "request": {"method": "POST", "url": "Observation"},
            "resource": {"resourceType": "Observation", "id": oid, "status": "final",
                         "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                         "subject": {"reference": subject}, "effectiveDateTime": when}}


def test_fixtures_load_with_their_own_ids_and_resolved_references(store):
    report = store.load_paths(bundle_paths())
    assert report.errors == [] and report.files == 5
    patient = store.read("Patient", MARIA.id)
    assert patient["id"] == MARIA.id and patient["meta"]["versionId"] == "1"
    obs = store.resources("Observation", [("patient", MARIA.id), ("_count", "1")])[0]
    assert obs["subject"]["reference"] == f"Patient/{MARIA.id}"
    encounter_ref = obs["encounter"]["reference"]
    assert encounter_ref.startswith("Encounter/") and store.read(*encounter_ref.split("/"))
    # Shared organizations appear in several bundles but are stored once.
    assert store.stats()["Organization"] == len(ORGANIZATIONS)


def test_reload_is_idempotent_and_updates_replace_index_rows(store, tmp_path):
    path = _write(tmp_path / "b.json", _bundle([_patient_entry(), _obs_entry("o1")]))
    assert store.load_paths([path]).resources == 2
    rows = _index_rows(store)
    again = store.load_paths([path])
    assert (again.resources, again.unchanged) == (0, 2) and _index_rows(store) == rows
    assert store.read("Observation", "o1")["meta"]["versionId"] == "1"

    _write(path, _bundle([_patient_entry(), _obs_entry("o1", code="2339-0", when="2021-05-05")]))
    changed = store.load_paths([path])
    assert (changed.resources, changed.unchanged) == (1, 1)
    assert store.read("Observation", "o1")["meta"]["versionId"] == "2"
    assert store.resources("Observation", [("code", "4548-4")]) == []           # no stale token row
    assert store.resources("Observation", [("date", "2020")]) == []             # no stale date row
    assert [o["id"] for o in store.resources("Observation", [("code", "2339-0"), ("date", "2021")])] == ["o1"]
    assert _index_rows(store) == rows


def test_delete_entries_remove_resources_and_their_index(store, tmp_path):
    store.load_paths([_write(tmp_path / "a.json", _bundle([_patient_entry(), _obs_entry("o1")]))])
    store.load_paths([_write(tmp_path / "d.json", _bundle([{"request": {"method": "DELETE", "url": "Observation/o1"}}]))])
    with pytest.raises(NotFound):
        store.read("Observation", "o1")
    assert store.resources("Observation", [("code", "4548-4")]) == []


@pytest.mark.parametrize("make, fragment", [
    (lambda: "{not json", "not valid JSON"),
    (lambda: {"resourceType": "Bundle", "type": "document", "entry": []}, "Bundle type 'document'"),
    (lambda: _bundle([_patient_entry(), _obs_entry("o1", subject="urn:uuid:missing")]), "entry[1] (Observation/o1): reference 'urn:uuid:missing' points to no entry"),
    (lambda: _bundle([_patient_entry(), _obs_entry("o1", when="2020-02-30")]), "entry[1] (Observation/o1)"),
    (lambda: _bundle([_patient_entry(), {**_obs_entry("o1"), "resource": {**_obs_entry("o1")["resource"], "status": 42}}]), "entry[1] (Observation/o1): invalid FHIR R4 resource: status"),
    (lambda: _bundle([_patient_entry(), {**_obs_entry("o1"), "resource": {**_obs_entry("o1")["resource"], "bogus": 1}}]), "bogus"),
    (lambda: _bundle([_patient_entry(), {"resource": {"resourceType": "Observation", "status": "final"}}]), "entry[1] (Observation/None): no valid id"),
    (lambda: _bundle([_patient_entry(), {"resource": {"resourceType": "Nonsense", "id": "x"}}]), "'Nonsense' is not a FHIR R4 resource type"),
    (lambda: _bundle([{"request": {"method": "PATCH", "url": "Patient/p1"}, "resource": {"resourceType": "Patient", "id": "p1"}}]), "method 'PATCH'"),
])
def test_a_bad_file_loads_nothing_and_names_file_entry_and_reason(store, tmp_path, make, fragment):
    store.load_paths([_write(tmp_path / "good.json", _bundle([_patient_entry("keep", "Kept")]))])
    before, rows = store.stats(), _index_rows(store)
    data = make()
    path = tmp_path / "bad.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    report = store.load_paths([path])
    assert report.files == 0 and len(report.errors) == 1
    assert str(path) in report.errors[0] and fragment in report.errors[0]
    assert store.stats() == before and _index_rows(store) == rows
    with pytest.raises(FhirError) as exc:  # load_file raises rather than reporting
        store.load_file(path)
    assert exc.value.outcome["resourceType"] == "OperationOutcome"


def test_good_files_still_load_beside_a_bad_one(store, tmp_path):
    good = _write(tmp_path / "good.json", _bundle([_patient_entry()]))
    bad = _write(tmp_path / "bad.json", _bundle([_obs_entry("o1", subject="urn:uuid:nobody")]))
    report = store.load_paths([bad, good])
    assert report.files == 1 and len(report.errors) == 1 and store.stats() == {"Patient": 1}


def test_gzip_ndjson_single_resources_and_folders(store, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "p.json.gz").write_bytes(gzip.compress(json.dumps(_bundle([_patient_entry()])).encode()))
    lines = [json.dumps({"resourceType": "Observation", "id": f"n{i}", "status": "final",
                         "code": {"text": "x"}, "subject": {"reference": "Patient/p1"}}) for i in range(3)]
    (folder / "obs.ndjson").write_text("\n".join(lines) + "\n")
    (folder / "single.json").write_text(json.dumps({"resourceType": "Patient", "id": "solo"}))
    (folder / "notes.txt").write_text("ignored: not a FHIR file")
    report = store.load_paths([folder])
    assert report.errors == [] and report.files == 3
    assert store.stats() == {"Observation": 3, "Patient": 2}
    assert len(store.resources("Observation", [("patient", "p1")])) == 3


def test_conditional_references_resolve_in_the_bundle_and_in_the_store(store, tmp_path):
    org = {"resourceType": "Organization", "id": "org1", "name": "General",
           "identifier": [{"system": "https://github.com/synthetichealth/synthea", "value": "abc"}]}
    store.load_paths([_write(tmp_path / "org.json", _bundle([{"fullUrl": "urn:uuid:org1", "resource": org}]))])
    patient = {"resourceType": "Patient", "id": "p9",
               "managingOrganization": {"reference": "Organization?identifier=https://github.com/synthetichealth/synthea|abc"}}
    report = store.load_paths([_write(tmp_path / "p.json", _bundle([{"fullUrl": "urn:uuid:p9", "resource": patient}]))])
    assert report.errors == []
    assert store.read("Patient", "p9")["managingOrganization"]["reference"] == "Organization/org1"
    assert [p["id"] for p in store.resources("Patient", [("organization", "org1")])] == ["p9"]


def test_create_validates_and_indexes(store):
    store.load_paths(bundle_paths()[:1])
    created = store.create({"resourceType": "Observation", "status": "preliminary",
                            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                            "subject": {"reference": f"Patient/{MARIA.id}"},
                            "effectiveDateTime": "2025-11-01T08:00:00Z",
                            "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}})
    assert created["id"] and created["meta"]["versionId"] == "1"
    found = store.resources("Observation", [("patient", MARIA.id), ("code", "8867-4"), ("date", "2025-11-01")])
    assert [o["id"] for o in found] == [created["id"]]
    with pytest.raises(FhirError) as exc:
        store.create({"resourceType": "Observation", "status": "final", "valueInteger": "many"})
    assert exc.value.status == 422
    with pytest.raises(FhirError) as exc:
        store.create(created)
    assert exc.value.status == 409


def test_unreachable_database_is_a_clear_error():
    with pytest.raises(FhirError) as exc:
        EmbeddedStore("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    assert exc.value.status == 503 and "cannot open store" in str(exc.value)


def test_the_40_shared_synthea_patients(shared_synthea_dir, tmp_path):
    store = EmbeddedStore(f"sqlite:///{tmp_path / 's.db'}")
    report = store.load_paths([shared_synthea_dir], validation="basic")
    assert report.errors == [] and report.files == 40
    counts = store.stats()
    assert counts["Patient"] == 40 and sum(counts.values()) == report.resources
    # Synthea repeats organizations and practitioners per patient: one row each here.
    assert counts["Organization"] < 63 and counts["Practitioner"] < 63
    for pid in store.patient_ids()[:5]:
        everything = store.resources("Observation", [("patient", pid), ("_sort", "-date")])
        dates = [o["effectiveDateTime"] for o in everything]
        assert dates == sorted(dates, reverse=True)
        assert all(o["subject"]["reference"] == f"Patient/{pid}" for o in everything)
