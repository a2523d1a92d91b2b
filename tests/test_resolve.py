"""tools/ehr/resolve.py: plain-text names -> the codes a record holds, and nothing wild."""

from __future__ import annotations

import pytest

from tools.ehr.resolve import clinical_type, looks_like_code, resolve_codes

LOINC, RX, SCT, CVX = ("http://loinc.org", "http://www.nlm.nih.gov/research/umls/rxnorm", "http://snomed.info/sct",
                       "http://hl7.org/fhir/sid/cvx")

OBSERVATIONS = [
    (LOINC, "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"),
    (LOINC, "85354-9", "Blood pressure panel with all children optional"),
    (LOINC, "39156-5", "Body mass index (BMI) [Ratio]"),
    (LOINC, "29463-7", "Body weight"),
    (LOINC, "8302-2", "Body height"),
    (LOINC, "8867-4", "Heart rate"),
    (LOINC, "2339-0", "Glucose [Mass/volume] in Blood"),
    (LOINC, "2093-3", "Cholesterol [Mass/volume] in Serum or Plasma"),
    (LOINC, "18262-6", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay"),
    (LOINC, "2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma"),
    (LOINC, "2160-0", "Creatinine [Mass/volume] in Serum or Plasma"),
    (LOINC, "14959-1", "Microalbumin/Creatinine [Mass Ratio] in Urine"),
    (LOINC, "33914-3", "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum or Plasma by "
                       "Creatinine-based formula (MDRD)"),
    (LOINC, "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
    (LOINC, "8310-5", "Body temperature"),
    (LOINC, "72166-2", "Tobacco smoking status"),
]
MEDICATIONS = [
    (RX, "860975", "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet"),
    (RX, "314076", "lisinopril 10 MG Oral Tablet"),
    (RX, "310798", "Hydrochlorothiazide 25 MG Oral Tablet"),
]
CONDITIONS = [
    (SCT, "44054006", "Diabetes mellitus type 2 (disorder)"),
    (SCT, "59621000", "Essential hypertension (disorder)"),
    (SCT, "29857009", "Chest pain (finding)"),
]
VACCINES = [
    (CVX, "140", "Influenza, seasonal, injectable, preservative free"),
    (CVX, "115", "Tdap"),
    (CVX, "03", "MMR"),
]

CASES = [  # (query, candidates, expected codes; [] = no match)
    ("HbA1c", OBSERVATIONS, ["4548-4"]),
    ("A1c", OBSERVATIONS, ["4548-4"]),
    ("hemoglobin a1c level", OBSERVATIONS, ["4548-4"]),
    ("Hemoglobn A1c", OBSERVATIONS, ["4548-4"]),  # a typo
    ("4548-4", OBSERVATIONS, ["4548-4"]),
    ("http://loinc.org|4548-4", OBSERVATIONS, ["4548-4"]),
    ("blood pressure", OBSERVATIONS, ["85354-9"]),
    ("BP", OBSERVATIONS, ["85354-9"]),
    ("BMI", OBSERVATIONS, ["39156-5"]),
    ("LDL", OBSERVATIONS, ["18262-6"]),
    ("HDL cholesterol", OBSERVATIONS, ["2085-9"]),
    ("cholesterol", OBSERVATIONS, ["2093-3"]),
    ("eGFR", OBSERVATIONS, ["33914-3"]),
    ("GFR", OBSERVATIONS, ["33914-3"]),
    ("Cr", OBSERVATIONS, ["2160-0"]),
    ("creatinine", OBSERVATIONS, ["2160-0"]),
    ("heart rate", OBSERVATIONS, ["8867-4"]),
    ("pulse", OBSERVATIONS, ["8867-4"]),
    ("SpO2", OBSERVATIONS, ["59408-5"]),
    ("oxygen saturation", OBSERVATIONS, ["59408-5"]),
    ("temperature", OBSERVATIONS, ["8310-5"]),
    ("weight", OBSERVATIONS, ["29463-7"]),
    ("height", OBSERVATIONS, ["8302-2"]),
    ("blood sugar", OBSERVATIONS, ["2339-0"]),
    ("glucose", OBSERVATIONS, ["2339-0"]),
    ("HbA1c, LDL", OBSERVATIONS, ["4548-4", "18262-6"]),
    ("blood", OBSERVATIONS, []),  # too generic to name a test
    ("troponin", OBSERVATIONS, []),
    ("insulin", OBSERVATIONS, []),
    ("metformin", MEDICATIONS, ["860975"]),
    ("Metformin 500", MEDICATIONS, ["860975"]),
    ("metformn", MEDICATIONS, ["860975"]),
    ("lisinopril", MEDICATIONS, ["314076"]),
    ("HCTZ", MEDICATIONS, ["310798"]),
    ("insulin", MEDICATIONS, []),
    ("atorvastatin", MEDICATIONS, []),
    ("metformin", [(RX, "314076", "lisinopril 10 MG Oral Tablet")], []),
    ("diabetes", CONDITIONS, ["44054006"]),
    ("T2DM", CONDITIONS, ["44054006"]),
    ("HTN", CONDITIONS, ["59621000"]),
    ("high blood pressure", CONDITIONS, ["59621000"]),
    ("asthma", CONDITIONS, []),
    ("prediabetes", CONDITIONS, []),
    ("flu shot", VACCINES, ["140"]),
    ("influenza vaccine", VACCINES, ["140"]),
    ("Td", VACCINES, []),  # Td (tetanus-diphtheria) is not Tdap: 'tetanus' names both
    ("Tdap", VACCINES, ["115"]),
    ("MMR", VACCINES, ["03"]),
    ("covid", VACCINES, []),
]


@pytest.mark.parametrize("query, candidates, expected", CASES, ids=[f"{q}->{e or 'none'}" for q, _, e in CASES])
def test_resolution_table(query, candidates, expected):
    res = resolve_codes(query, candidates)
    assert [m.code for m in res.matches] == expected, res.message
    assert res.ok == bool(expected)


def test_match_names_the_code_and_display():
    res = resolve_codes("HbA1c", OBSERVATIONS)
    assert res.codes == ["http://loinc.org|4548-4"] and res.param_value() == "http://loinc.org|4548-4"
    assert res.message == "matched 'HbA1c' to http://loinc.org|4548-4 Hemoglobin A1c/Hemoglobin.total in Blood"
    assert res.score >= 85


def test_no_match_lists_the_closest_names_held():
    res = resolve_codes("insulin", MEDICATIONS)
    assert not res.ok and res.codes == [] and "closest names the record holds" in res.message
    assert "lisinopril 10 MG Oral Tablet" in res.message
    assert "holds no coded entries" in resolve_codes("insulin", []).message


def test_codes_not_in_the_record_pass_through_verbatim_with_a_note():
    res = resolve_codes("2345-7", OBSERVATIONS)
    assert res.verbatim and res.codes == ["2345-7"] and "not among the codes" in res.message
    piped = resolve_codes("http://loinc.org|8480-6", OBSERVATIONS)
    assert piped.codes == ["http://loinc.org|8480-6"] and piped.verbatim
    listed = resolve_codes("4548-4,2339-0", OBSERVATIONS)
    assert listed.codes == ["http://loinc.org|4548-4", "http://loinc.org|2339-0"]


def test_helpers():
    assert looks_like_code("4548-4") and looks_like_code("860975") and looks_like_code("E11.9")
    assert not looks_like_code("HbA1c") and not looks_like_code("blood pressure")
    assert clinical_type("observation") == "Observation" and clinical_type("allergies") == "AllergyIntolerance"
    assert clinical_type("meds") == "MedicationRequest" and clinical_type("vaccines") == "Immunization"
    with pytest.raises(ValueError):
        clinical_type("Spaceship")
