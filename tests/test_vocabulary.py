"""tools/ehr/vocabulary.py and the labelled name list: the data resolution stands on."""

from __future__ import annotations

import gzip
import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from tools.ehr.resolve import looks_like_code, name_forms, resolve_codes
from tools.ehr.vocabulary import BY_NAME, CONCEPTS, WORD_FORMS, norm
from tools.fhir.manifest import summarise
from tools.fhir.search_params import CODE_PARAM

ROOT = Path(__file__).resolve().parents[1]
LABELS = ROOT / "evals" / "data" / "name_resolution.jsonl"
SYNTHEA = ROOT.parent / "shared" / "data" / "synthea-r4"
CODE = re.compile(r"^(\d[\d-]*|[A-Z]{2})$")


def test_concepts_are_well_formed():
    assert len(CONCEPTS) > 200
    for c in CONCEPTS:
        assert c.names and all(n == norm(n) for n in c.names), c.key
        assert c.codes or c.phrases, c.key  # a concept that can match nothing is a typo
        assert all(CODE.match(code) for code in c.codes), (c.key, sorted(c.codes))
        assert set(c.systems) <= {"loinc", "sct", "rxnorm", "cvx"}, c.key
        assert all(p.rstrip("*") == norm(p.rstrip("*")) for p in (*c.phrases, *c.exclude)), c.key


def test_no_name_means_two_concepts_in_one_code_system():
    for name, concepts in BY_NAME.items():
        systems = [s for c in concepts for s in c.systems]
        assert len(systems) == len(set(systems)), (name, [c.key for c in concepts])


def test_word_forms_spell_out_to_known_words():
    assert name_forms("W.B.C.")[-1] != "" and "wbc" in name_forms("W.B.C.")
    assert "plt count" in name_forms("Plt ct") and "high blood pressure" in name_forms("high BP")
    assert "td" in name_forms("tetanus-diphtheria (Td)") and "metformin" in name_forms("metformin ER")
    assert all(v == norm(v) for v in WORD_FORMS.values())


def _labels() -> list[dict]:
    return [json.loads(line) for line in LABELS.read_text().splitlines() if line.strip()]


def test_the_labelled_list_is_clinicians_words_with_real_negatives():
    rows = _labels()
    assert len(rows) >= 120
    assert len({(r["name"], r["resource_type"]) for r in rows}) == len(rows)
    assert sum(not r["expected"] for r in rows) >= 20  # names the records do not hold
    assert {r["split"] for r in rows} == {"dev", "holdout", "free"}
    assert all(r["resource_type"] in CODE_PARAM for r in rows)
    assert not [r["name"] for r in rows if looks_like_code(r["name"])]  # names, never codes


@pytest.fixture(scope="module")
def shared_codes() -> dict[str, list]:
    """The union over the shared Synthea patients of the (system, code, display) per type."""
    if not SYNTHEA.is_dir() or not any(SYNTHEA.glob("*.json.gz")):
        pytest.skip(f"shared Synthea data not found at {SYNTHEA}")
    merged: dict[str, dict] = defaultdict(dict)
    for path in sorted(SYNTHEA.glob("*.json.gz")):
        by_type = defaultdict(list)
        for entry in json.loads(gzip.decompress(path.read_bytes()))["entry"]:
            res = entry["resource"]
            if res["resourceType"] in CODE_PARAM:
                by_type[res["resourceType"]].append(res)
        for rtype, resources in by_type.items():
            codes = summarise(rtype, resources).codes
            merged[rtype].update(dict.fromkeys((c.system, c.code, c.display) for c in codes))
    return {t: list(v) for t, v in merged.items()}


def test_labelled_codes_exist_in_the_shared_records(shared_codes):
    for row in _labels():
        held = {c for _, c, _ in shared_codes.get(row["resource_type"], [])}
        assert set(row["expected"]) <= held, row


def test_labelled_names_never_resolve_to_a_code_outside_their_expected_set(shared_codes):
    """Exactness is the benchmark's figure; this is the safety line: over the most confusable
    candidate set (every patient's codes together), no name reaches a code it does not mean,
    except the one dose-ambiguous name the benchmark lists ('Tylenol 325' also reaches the
    325 mg acetaminophen in Percocet)."""
    def resolved(row):
        found = resolve_codes(row["name"], shared_codes.get(row["resource_type"], []), semantic=None)
        return {m.code for m in found.matches}

    extra = {r["name"]: sorted(resolved(r) - set(r["expected"])) for r in _labels()}
    assert {name: codes for name, codes in extra.items() if codes} == {"Tylenol 325": ["1049221"]}
    dev = [r for r in _labels() if r["split"] == "dev"]
    assert [r["name"] for r in dev if resolved(r) != set(r["expected"])] == []
