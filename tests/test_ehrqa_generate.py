"""The EHRQA-style generator over the five fixture patients: deterministic, every category,
golds that the raw bundles confirm (read here without the generator's code), real negatives,
and questions in plain words."""

from __future__ import annotations

import json
import re
from collections import defaultdict

import pytest

from evals.ehrqa.generate import CATEGORIES, generate, read_jsonl, write_jsonl
from fhir_fixtures import PATIENTS, bundle_paths
from tools.fhir.store import EmbeddedStore

MARIA, ELEANOR, AISHA = PATIENTS["diabetic"], PATIENTS["ckd_hf"], PATIENTS["healthy"]
CODE_LIKE = re.compile(r"\b\d{5,}\b|\b\d{1,5}-\d\b|https?:|\|")


@pytest.fixture(scope="module")
def questions(store):
    return [q.to_json() for q in generate(store, seed=0, per_category=None)]


@pytest.fixture(scope="module")
def raw() -> dict[str, dict[str, list[dict]]]:
    """patient id -> resource type -> resources, straight from the bundle files."""
    out: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for path in bundle_paths():
        entries = json.loads(path.read_text())["entry"]
        pid = next(e["resource"]["id"] for e in entries if e["resource"]["resourceType"] == "Patient")
        for e in entries:
            out[pid][e["resource"]["resourceType"]].append(e["resource"])
    return out


def _codes(resource: dict, key: str) -> set[str]:
    return {c["code"] for c in resource.get(key, {}).get("coding", [])}


def _ideal_codes(q: dict) -> set[str]:
    return {t.rsplit("|", 1)[-1] for t in q["ideal"][0]["args"].get("code", "").split(",") if t}


def test_deterministic_for_a_seed_and_bounded_per_category(store, questions):
    again = [q.to_json() for q in generate(store, seed=0, per_category=None)]
    assert again == questions
    other = [q.to_json() for q in generate(store, seed=1, per_category=None)]
    assert other != questions
    small = [q.to_json() for q in generate(store, seed=0, per_category=3)]
    counts = defaultdict(int)
    for q in small:
        counts[q["category"]] += 1
    assert set(counts) == set(CATEGORIES) and max(counts.values()) <= 3


def test_every_category_present_with_valid_rows(questions):
    assert {q["category"] for q in questions} == set(CATEGORIES)
    assert len({q["id"] for q in questions}) == len(questions)
    for q in questions:
        assert q["answer_type"] in ("yesno", "number", "date", "name", "count", "text")
        assert 1 <= len(q["ideal"]) <= 2 and q["extract"]["kind"]
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", q["now"])
        assert (q["patient_id"] == "") == (q["category"] == "patient_lookup")


def test_questions_use_plain_names_never_codes(questions):
    for q in questions:
        assert not CODE_LIKE.search(q["question"]), q["question"]


def test_yes_no_questions_have_both_answers(questions):
    for cat in ("condition_existence", "transitive_condition_existence", "medication_current", "medication_existence"):
        golds = {q["gold"] for q in questions if q["category"] == cat}
        assert golds == {"yes", "no"}, cat


def test_negatives_are_absent_from_the_patient_and_present_in_others(questions, raw):
    for q in questions:
        if q["answer_type"] != "yesno" or q["gold"] != "no" or q["category"] == "medication_current":
            continue
        rtype = q["ideal"][0]["args"]["resource_type"]
        key = "code" if rtype == "Condition" else "medicationCodeableConcept"
        wanted = _ideal_codes(q)
        mine = [r for r in raw[q["patient_id"]][rtype] if _codes(r, key) & wanted]
        assert not mine, q["question"]
        if q["category"] != "transitive_condition_existence":
            others = [r for pid, res in raw.items() if pid != q["patient_id"] for r in res[rtype] if _codes(r, key) & wanted]
            assert others, f"not a real negative: {q['question']}"


def test_positive_existence_answers_hold_a_record_on_or_before_now(questions, raw):
    for q in questions:
        if q["category"] in ("condition_existence", "medication_existence") and q["gold"] == "yes":
            rtype = q["ideal"][0]["args"]["resource_type"]
            key, when = ("code", "onsetDateTime") if rtype == "Condition" else ("medicationCodeableConcept", "authoredOn")
            hits = [r for r in raw[q["patient_id"]][rtype] if _codes(r, key) & _ideal_codes(q) and r[when][:10] <= q["now"]]
            assert hits, q["question"]


def test_observation_values_are_the_newest_as_of_now(questions, raw):
    checked = 0
    for q in questions:
        if q["category"] != "observation_value" or "date_from" in q["ideal"][0]["args"]:
            continue
        obs = [o for o in raw[q["patient_id"]]["Observation"] if _codes(o, "code") & _ideal_codes(q)
               and o["effectiveDateTime"][:10] <= q["now"] and "valueQuantity" in o]
        if not obs:
            continue  # blood pressure: components, checked by the oracle test
        newest = max(obs, key=lambda o: o["effectiveDateTime"])
        assert q["gold"] == pytest.approx(newest["valueQuantity"]["value"], abs=1e-3), q["question"]
        assert q["unit"] == newest["valueQuantity"]["unit"]
        checked += 1
    assert checked >= 10


def test_immunization_and_prescription_dates_follow_the_records(questions, raw):
    checked = 0
    for q in questions:
        if q["category"] not in ("immunization_date", "medication_prescription_date"):
            continue
        rtype, key, when = (("Immunization", "vaccineCode", "occurrenceDateTime") if q["category"] == "immunization_date"
                            else ("MedicationRequest", "medicationCodeableConcept", "authoredOn"))
        days = sorted(r[when][:10] for r in raw[q["patient_id"]][rtype]
                      if _codes(r, key) & _ideal_codes(q) and r[when][:10] <= q["now"])
        first = q["ideal"][0]["args"].get("sort") == "date"
        assert q["gold"] == (days[0] if first else days[-1]), q["question"]
        checked += 1
    assert checked >= 10


def test_known_facts_of_the_fixture_patients(questions, raw):
    by = defaultdict(list)
    for q in questions:
        by[(q["patient_id"], q["category"])].append(q)
    # Maria's prescriptions were written by Dr. Helen Marsh.
    prescribers = {q["gold"] for q in by[(MARIA.id, "medication_prescriber")]}
    assert prescribers == {"Helen Marsh"}
    # Aisha has no conditions and no medications: every such question about her is a 'no'.
    assert all(q["gold"] == "no" for cat in ("condition_existence", "transitive_condition_existence",
                                             "medication_existence") for q in by[(AISHA.id, cat)])
    assert by[(AISHA.id, "condition_existence")]
    # Eleanor's heart failure drugs: furosemide and carvedilol.
    for q in by[(ELEANOR.id, "medication_for_condition")]:
        if "heart failure" in q["question"]:
            assert q["gold"] in ("furosemide", "carvedilol")
    # Ages follow the birth date and the question's reference day.
    for q in (q for q in questions if q["category"] == "age"):
        birth = raw[q["patient_id"]]["Patient"][0]["birthDate"]
        years = int(q["now"][:4]) - int(birth[:4]) - (q["now"][5:] < birth[5:])
        assert q["gold"] == years
    # Lookups name the patient and their birth date, and the gold is the id.
    for q in (q for q in questions if q["category"] == "patient_lookup"):
        p = next(p for p in PATIENTS.values() if p.id == q["gold"])
        assert p.given in q["question"] and p.family in q["question"]


def test_jsonl_round_trip(tmp_path, store):
    qs = generate(store, seed=3, per_category=2)
    path = tmp_path / "q.jsonl"
    assert write_jsonl(qs, path) == len(qs)
    assert [q.to_json() for q in read_jsonl(path)] == [q.to_json() for q in qs]


def test_cli_generate_writes_the_same_questions(store, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from agent.cli.main import app

    for var in ("MEDAGENT_STORE", "MEDAGENT_FHIR_URL", "MEDAGENT_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    db, out = tmp_path / "cli.db", tmp_path / "q.jsonl"
    EmbeddedStore(f"sqlite:///{db}").load_paths(bundle_paths())
    result = CliRunner().invoke(app, ["ehrqa", "generate", "--out", str(out), "--store", f"sqlite:///{db}",
                                      "--per-category", "2", "--seed", "5", "--patients", f"{MARIA.id},{AISHA.id}"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and {r["patient_id"] for r in rows} <= {MARIA.id, AISHA.id, ""}
    assert rows == [q.to_json() for q in generate(store, seed=5, per_category=2, patient_ids=[MARIA.id, AISHA.id])]
