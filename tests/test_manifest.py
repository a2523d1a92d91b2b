"""tools/fhir/manifest.py: what a patient's record holds, built from FHIR searches."""

from __future__ import annotations


from fhir_fixtures import PATIENTS
from tools.fhir import manifest as manifest_mod
from tools.fhir.manifest import Manifest, TypeSummary, build_manifest
from tools.fhir.store import EmbeddedStore

MARIA, HEALTHY = PATIENTS["diabetic"], PATIENTS["healthy"]


def test_demographics_counts_and_dates(store):
    m = build_manifest(store, MARIA.id)
    assert (m.id, m.name, m.gender, m.birthDate, m.deceased) == (MARIA.id, "Maria Garcia", "female", "1962-04-17", None)
    assert m.types["Observation"].count == 101
    assert m.types["MedicationRequest"].count == 3 and m.types["AllergyIntolerance"].count == 1
    assert m.types["Immunization"].first == "2016-10-12" and m.types["Immunization"].last == "2024-09-18"
    hba1c = next(c for c in m.codes("Observation") if c.code == "4548-4")
    assert (hba1c.system, hba1c.display, hba1c.count) == ("http://loinc.org", "Hemoglobin A1c/Hemoglobin.total in Blood", 12)
    assert (hba1c.first, hba1c.last) == ("2016-02-10", "2025-06-11")
    assert hba1c.token == "http://loinc.org|4548-4"


def test_codes_sorted_by_count_then_newest(store):
    codes = build_manifest(store, MARIA.id).codes("Observation")
    counts = [c.count for c in codes]
    assert counts == sorted(counts, reverse=True)
    assert codes[0].count == 15
    assert {c.code for c in codes} >= {"4548-4", "85354-9", "39156-5", "2339-0"}


def test_every_type_is_patient_scoped(store):
    lucas = build_manifest(store, PATIENTS["asthma_child"].id)
    assert not any(c.code == "4548-4" for c in lucas.codes("Observation"))
    assert [c.display for c in lucas.codes("AllergyIntolerance")] == ["Allergy to peanuts"]


def test_render_is_compact_and_says_what_is_absent(store):
    text = build_manifest(store, HEALTHY.id).render()
    assert text.startswith("Patient Aisha Rahman | id ")
    assert "None recorded:" in text and "Condition" in text.split("None recorded:")[1]
    assert "MedicationRequest" in text.split("None recorded:")[1]
    short = build_manifest(store, MARIA.id).render(max_codes_per_type=3)
    assert "(+12 more codes" in short
    assert len(short) < len(build_manifest(store, MARIA.id).render(max_codes_per_type=50))


def test_paging_gives_the_same_manifest(store, monkeypatch):
    full = build_manifest(store, MARIA.id)
    monkeypatch.setattr(manifest_mod, "PAGE_SIZE", 7)
    assert build_manifest(store, MARIA.id) == full


def test_backend_fast_path_is_used_when_present(store):
    class FastStore(EmbeddedStore):
        def patient_manifest(self, patient_id):
            return {"id": patient_id, "name": "from the fast path",
                    "types": {"Observation": TypeSummary(count=1).model_dump()}}

    fast = FastStore(store.url)
    m = build_manifest(fast, MARIA.id)
    assert isinstance(m, Manifest) and m.name == "from the fast path" and m.types["Observation"].count == 1
    fast.close()
