"""Clinicians' words through the EHR tools on a real Synthea record (issue 8's failures)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tools.ehr import EhrSession
from tools.fhir.store import EmbeddedStore

SYNTHEA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "synthea-r4"


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    if not SYNTHEA.is_dir() or not any(SYNTHEA.glob("*.json.gz")):
        pytest.skip(f"shared Synthea data not found at {SYNTHEA}")
    smallest = min(SYNTHEA.glob("*.json.gz"), key=os.path.getsize)  # every shared patient has a CBC
    store = EmbeddedStore(f"sqlite:///{tmp_path_factory.mktemp('resolve') / 'one.db'}")
    assert not store.load_paths([smallest]).errors
    yield EhrSession(store, store.patient_ids()[0])
    store.close()


def _codes(result) -> set[str]:
    return {c["code"] for r in result.resources if r["resourceType"] == "Observation" for c in r["code"]["coding"]}


@pytest.mark.parametrize("name, code", [("platelet count", "777-3"), ("white blood cell count", "6690-2"),
                                        ("WBC", "6690-2"), ("hemoglobin", "718-7"), ("blood hemoglobin", "718-7"),
                                        ("Hgb", "718-7"), ("hematocrit", "4544-3")])
def test_search_records_reaches_the_one_test_meant(session, name, code):
    result = session.search_records("Observation", code=name, limit=50)
    assert result.error is None and result.ids, result.text
    assert _codes(result) == {code}, result.text
    assert f"matched '{name}' to {code} " in result.text  # the code used is said (no system URL: noise)


def test_a_name_the_record_lacks_is_said_not_guessed(session):
    result = session.search_records("Observation", code="troponin")
    assert not result.ids and "closest names the record holds" in result.text
