"""tools/ehr/resolve.py: plain-text names -> the codes a record holds, and nothing wild."""

from __future__ import annotations

import pytest

from tools.ehr.categories import clinical_type
from tools.ehr.resolve import looks_like_code, resolve_codes

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


# -- the failures seen on real Synthea displays (issue 8), with the displays as Synthea writes them --

CBC = [
    (LOINC, "6690-2", "Leukocytes [#/volume] in Blood by Automated count"),
    (LOINC, "789-8", "Erythrocytes [#/volume] in Blood by Automated count"),
    (LOINC, "718-7", "Hemoglobin [Mass/volume] in Blood"),
    (LOINC, "4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count"),
    (LOINC, "777-3", "Platelets [#/volume] in Blood by Automated count"),
    (LOINC, "32207-3", "Platelet distribution width [Entitic volume] in Blood by Automated count"),
    (LOINC, "32623-1", "Platelet mean volume [Entitic volume] in Blood by Automated count"),
    (LOINC, "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"),
    (LOINC, "5794-3", "Hemoglobin [Presence] in Urine by Test strip"),
    (LOINC, "5799-2", "Leukocyte esterase [Presence] in Urine by Test strip"),
]
ENCOUNTERS = [
    (SCT, "50849002", "Emergency room admission (procedure)"),
    (SCT, "183460006", "Obstetric emergency hospital admission"),
    (SCT, "185349003", "Encounter for check up (procedure)"),
    (SCT, "185347001", "Encounter for problem"),
    (SCT, "185345009", "Encounter for symptom"),
    (SCT, "424619006", "Prenatal visit"),
    (SCT, "424441002", "Prenatal initial visit"),
    (SCT, "170838006", "Allergic disorder follow-up assessment"),
]
SYNTHEA_CASES = [
    ("platelet count", CBC, ["777-3"]), ("platelets", CBC, ["777-3"]), ("plt", CBC, ["777-3"]),
    ("Plt ct", CBC, ["777-3"]), ("mean platelet volume", CBC, ["32623-1"]),
    ("white blood cell count", CBC, ["6690-2"]), ("WBC", CBC, ["6690-2"]), ("W.B.C.", CBC, ["6690-2"]),
    ("white count", CBC, ["6690-2"]), ("leukocytes", CBC, ["6690-2"]),
    ("hemoglobin", CBC, ["718-7"]), ("blood hemoglobin", CBC, ["718-7"]), ("Hgb", CBC, ["718-7"]),
    ("HbA1c", CBC, ["4548-4"]), ("A1c", CBC, ["4548-4"]),
    ("hemoglobin", [c for c in CBC if c[1] != "718-7"], []),  # only HbA1c and urine Hb held: not hemoglobin
    ("ED visit", ENCOUNTERS, ["50849002"]), ("emergency room visit", ENCOUNTERS, ["50849002"]),
    ("check up", ENCOUNTERS, ["185349003"]), ("well visit", ENCOUNTERS, ["185349003"]),
    ("sick visit", ENCOUNTERS, ["185347001"]), ("prenatal visit", ENCOUNTERS, ["424619006", "424441002"]),
    ("follow-up visit", ENCOUNTERS, []),  # an allergy follow-up assessment is another type
    ("urgent care", ENCOUNTERS, []),
    ("ED visit", [c for c in ENCOUNTERS if c[1] != "50849002"], []),  # not the obstetric emergency admission
    ("Lipitor", [(RX, "259255", "Atorvastatin 80 MG Oral Tablet")], ["259255"]),
    ("Zocor", [(RX, "316672", "Simvistatin 10 MG"), (RX, "312961", "Simvastatin 20 MG Oral Tablet")],
     ["316672", "312961"]),
    ("Glucophage", MEDICATIONS, ["860975"]),
    ("potassium", [(RX, "834061", "Penicillin V Potassium 250 MG Oral Tablet")], []),  # the lab, not a salt
    ("hep A", [(CVX, "43", "Hep B, adult")], []),
    ("tetanus", VACCINES, ["115"]),
    ("sugar diabetes", CONDITIONS, ["44054006"]),
    ("pregnancy test",
     [(SCT, "252160004", "Standard pregnancy test"), (SCT, "386394001", "Pregnancy termination care")], ["252160004"]),
]


@pytest.mark.parametrize("query, candidates, expected", SYNTHEA_CASES,
                         ids=[f"{q}->{e or 'none'}" for q, _, e in SYNTHEA_CASES])
def test_clinicians_words_on_synthea_displays(query, candidates, expected):
    res = resolve_codes(query, candidates, semantic=None)
    assert sorted(m.code for m in res.matches) == sorted(expected), res.message


CONDITIONS_HELD = [
    (SCT, "10509002", "Acute bronchitis (disorder)"), (SCT, "185086009", "Chronic obstructive bronchitis (disorder)"),
    (SCT, "233604007", "Pneumonia"), (SCT, "195662009", "Acute viral pharyngitis (disorder)"),
    (SCT, "49436004", "Atrial Fibrillation"), (SCT, "22298006", "Myocardial Infarction"),
    (SCT, "399211009", "History of myocardial infarction (situation)"), (SCT, "38341003", "Hypertension"),
    (SCT, "126906006", "Neoplasm of prostate"),
    (SCT, "314994000", "Metastasis from malignant tumor of prostate (disorder)"),
    (SCT, "68496003", "Polyp of colon"), (SCT, "192127007", "Child attention deficit disorder"),
    (SCT, "38822007", "Cystitis"), (SCT, "65966004", "Fracture of forearm"),
]
GROUPS = [
    ("any lung disease", ["10509002", "185086009", "233604007"]),
    ("any heart disease", ["49436004", "22298006", "399211009"]),
    ("a heart condition", ["49436004", "22298006", "399211009"]),
    ("any cardiovascular disease", ["49436004", "22298006", "399211009", "38341003"]),
    ("any cancer", ["126906006", "314994000"]),
    ("any mental health condition", ["192127007"]),
    ("any infection", ["10509002", "233604007", "195662009", "38822007"]),
    ("any kidney disease", []),
    ("any fracture", ["65966004"]),
]


@pytest.mark.parametrize("query, expected", GROUPS, ids=[q for q, _ in GROUPS])
def test_group_names_resolve_to_every_member_held(query, expected):
    res = resolve_codes(query, CONDITIONS_HELD, semantic=None)
    assert sorted(m.code for m in res.matches) == sorted(expected), res.message
    if expected:
        assert res.how == "group" and "a group" in res.message


def test_drug_groups_and_ingredients_reach_every_product():
    meds = [(RX, "1049221", "Acetaminophen 325 MG / Oxycodone Hydrochloride 5 MG Oral Tablet"),
            (RX, "313782", "Acetaminophen 325 MG Oral Tablet"), (RX, "259255", "Atorvastatin 80 MG Oral Tablet"),
            (RX, "316672", "Simvistatin 10 MG"), (RX, "748856", "Yaz 28 Day Pack"), *MEDICATIONS]
    assert sorted(m.code for m in resolve_codes("any statin", meds).matches) == ["259255", "316672"]
    assert sorted(m.code for m in resolve_codes("any opioid", meds).matches) == ["1049221"]
    assert [m.code for m in resolve_codes("birth control", meds).matches] == ["748856"]
    assert sorted(m.code for m in resolve_codes("Tylenol", meds).matches) == ["1049221", "313782"]
    assert [m.code for m in resolve_codes("Lipitor 80", meds).matches] == ["259255"]


def test_every_match_names_each_code_it_used():
    """Never a silent code: the message names every code and display the search will use."""
    for query, cands in [("platelet count", CBC), ("any lung disease", CONDITIONS_HELD), ("Glucophage", MEDICATIONS),
                         ("prenatal visit", ENCOUNTERS), ("HbA1c, WBC", CBC)]:
        res = resolve_codes(query, cands, semantic=None)
        for m in res.matches:
            assert m.code in res.message and (m.display or "") in res.message
        assert res.ok and res.message.startswith("matched '")


def test_a_name_the_record_lacks_gives_closest_names_not_a_guess():
    res = resolve_codes("hemoglobin", [c for c in CBC if c[1] != "718-7"], semantic=None)
    assert not res.ok and "closest names the record holds" in res.message
    res = resolve_codes("heart rate", CBC, semantic=None)
    assert not res.ok and res.codes == []
