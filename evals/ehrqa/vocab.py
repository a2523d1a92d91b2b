"""The evaluation's own clinical vocabulary: plain names for codes, and condition groups.

Kept apart from the tools' vocabulary (tools/ehr/resolve.py) on purpose: the questions must
not be written in the words the tools already understand, or the evaluation would only
measure itself. Questions use these plain names; the ideal tool calls use codes.
"""

from __future__ import annotations

import re

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CVX = "http://hl7.org/fhir/sid/cvx"

#: LOINC code -> (plain name, answer unit label) for numeric observations worth asking about.
OBSERVATIONS: dict[str, str] = {
    "39156-5": "BMI", "29463-7": "body weight", "8302-2": "height", "8867-4": "heart rate",
    "9279-1": "respiratory rate", "8310-5": "body temperature", "8331-1": "oral temperature",
    "4548-4": "hemoglobin A1c", "2339-0": "blood glucose", "2093-3": "total cholesterol",
    "2571-8": "triglycerides", "18262-6": "LDL cholesterol", "2085-9": "HDL cholesterol",
    "2160-0": "serum creatinine", "38483-4": "creatinine", "33914-3": "estimated GFR",
    "6299-2": "blood urea nitrogen", "2947-0": "sodium", "6298-4": "potassium", "2823-3": "potassium",
    "2069-3": "chloride", "20565-8": "carbon dioxide", "49765-1": "calcium", "6690-2": "white blood cell count",
    "789-8": "red blood cell count", "718-7": "hemoglobin", "4544-3": "hematocrit", "777-3": "platelet count",
    "787-2": "MCV", "72514-3": "pain score", "59408-5": "oxygen saturation", "2708-6": "oxygen saturation",
    "33762-6": "NT-proBNP", "10230-1": "ejection fraction", "1751-7": "albumin", "2885-2": "total protein",
    "1742-6": "ALT", "1920-8": "AST", "6768-6": "alkaline phosphatase", "1975-2": "total bilirubin",
    "14959-1": "urine microalbumin/creatinine ratio", "2857-1": "PSA", "72106-8": "MMSE score",
    "19926-5": "FEV1/FVC", "9843-4": "head circumference", "55758-7": "PHQ-2 score",
}
#: Pairs measured at the same visit: (anchor LOINC, target LOINC) for dependent observations.
DEPENDENT_PAIRS: tuple[tuple[str, str], ...] = (
    ("39156-5", "29463-7"), ("39156-5", "8302-2"), ("29463-7", "8302-2"), ("4548-4", "2339-0"),
    ("18262-6", "2093-3"), ("2093-3", "2085-9"), ("2160-0", "33914-3"), ("38483-4", "33914-3"),
    ("2339-0", "6298-4"), ("85354-9", "8867-4"), ("55284-4", "8867-4"),
)
BLOOD_PRESSURE = ("85354-9", "55284-4")

#: CVX code -> plain vaccine name.
VACCINES: dict[str, str] = {
    "140": "flu", "141": "flu", "150": "flu", "158": "flu", "161": "flu", "113": "tetanus-diphtheria (Td)",
    "115": "Tdap", "09": "tetanus-diphtheria (Td)", "133": "pneumococcal conjugate (PCV13)",
    "33": "pneumococcal polysaccharide (PPSV23)", "20": "DTaP", "10": "polio (IPV)", "114": "meningococcal",
    "08": "hepatitis B", "43": "hepatitis B", "49": "Hib", "62": "HPV", "119": "rotavirus", "121": "shingles",
    "187": "shingles", "21": "chickenpox (varicella)", "03": "MMR", "83": "hepatitis A", "52": "hepatitis A",
    "207": "COVID-19", "208": "COVID-19", "212": "COVID-19",
}

#: Transitive condition existence: a group name -> its member SNOMED codes (any of them = yes).
CONDITION_GROUPS: dict[str, frozenset[str]] = {
    "a heart condition": frozenset({"84114007", "88805009", "53741008", "22298006", "399211009", "410429000",
                                    "429007001", "49436004", "414545008", "401303003", "401314000"}),
    "any cardiovascular disease": frozenset({"84114007", "88805009", "53741008", "22298006", "399211009",
                                             "410429000", "429007001", "49436004", "38341003", "59621000",
                                             "230690007", "414545008"}),
    "any chronic lung disease": frozenset({"195967001", "233678006", "13645005", "185086009", "87433001"}),
    "any lung disease": frozenset({"195967001", "233678006", "13645005", "185086009", "87433001", "233604007",
                                   "254637007", "424132000", "162573006"}),
    "any form of diabetes": frozenset({"44054006", "46635009", "368581000119106", "422034002", "127013003",
                                       "1551000119108", "157141000119108", "90781000119102", "1501000119109"}),
    "any cancer": frozenset({"126906006", "92691004", "314994000", "109838007", "254637007", "424132000",
                             "254837009", "363406005", "93761005", "94260004", "162573006"}),
    "any kidney disease": frozenset({"433144002", "431855005", "431856006", "431857002", "46177005",
                                     "127013003", "90781000119102"}),
    "a urinary tract infection": frozenset({"38822007", "197927001", "68566005"}),
    "any respiratory infection": frozenset({"444814009", "195662009", "10509002", "43878008", "36971009",
                                            "233604007"}),
    "a neurological disorder": frozenset({"26929004", "84757009", "128613002", "124171000119105", "230690007"}),
    "any injury": frozenset({"62564004", "62106007", "370247008", "403190006", "58150001", "65966004",
                             "263102004", "444470001", "444448004", "307731004", "284551006", "283371005",
                             "283385000", "44465007", "70704007", "39848009"}),
    "any arthritis": frozenset({"239873007", "201834006", "90560007", "69896004"}),
    "a lipid disorder": frozenset({"55822004", "302870006", "237602007"}),
}

#: Conditions not asked about by name: situations, pregnancy states, social findings.
SKIP_CONDITIONS = re.compile(r"history of|normal pregnancy|smokes|fetus with|blighted ovum", re.I)
_SUFFIX = re.compile(r"\s*\((disorder|finding|situation|procedure|morphologic abnormality)\)\s*$", re.I)
_WORD = re.compile(r"[a-z0-9]+")
#: Words that say nothing about which condition or drug is meant (for overlap tests).
GENERIC_WORDS = frozenset("""of the a an and or with without to in by due acute chronic disorder disease finding
    recurrent primary localized type first degree 30 body""".split())


def condition_name(display: str) -> str:
    """'Acute bronchitis (disorder)' -> 'acute bronchitis'; 'Alzheimer's disease' keeps its capital."""
    text = _SUFFIX.sub("", display or "").strip()
    if text.startswith("Body mass index 30+"):
        return "obesity"
    # Synthea capitalises at random ('Coronary Heart Disease'): lower case, except acronyms
    # ('COPD') and eponyms ("Alzheimer's").
    return " ".join(w if w[:2].isupper() or "'" in w else w.lower() for w in text.split())


# -- medication names ------------------------------------------------------------------------------

_BRAND = re.compile(r"\[([^\]]+)\]")
_LEAD = re.compile(r"^(NDA\d+|Abuse-Deterrent|\d+(\.\d+)?\s*(HR|ACTUAT|ML|hr)|\d+hr)\s+", re.I)
_FORMS = frozenset("""oral tablet tablets capsule capsules extended release solution suspension injection injectable
    prefilled syringe auto-injector metered dose inhaler dry powder transdermal system patch mucosal spray
    intrauterine drug implant day pack vaginal ring chewable topical cream""".split())
_SALTS = frozenset("""hydrochloride sodium potassium bitartrate succinate acetate propionate hydrobromide besylate
    maleate tartrate citrate""".split())
_DRUG_FIXES = {"simvistatin": "simvastatin", "lasix": "furosemide"}


def _ingredient(part: str) -> str:
    words = []
    for w in part.split():
        if w[:1].isdigit() or w.upper() in ("MG", "ML", "MG/ML"):
            break
        if w.lower() in _FORMS:
            continue
        words.append(w if len(w) == 1 else w.lower())  # 'Penicillin V' keeps its V
    kept = [w for w in words if w not in _SALTS] or words
    name = " ".join(kept)
    return _DRUG_FIXES.get(name, name)


def drug_name(display: str) -> str:
    """A clinician's name for a drug display: ingredients without strengths, forms or salts.

    'Acetaminophen 325 MG / Oxycodone Hydrochloride 5 MG Oral Tablet' -> 'acetaminophen/oxycodone';
    '24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet' -> 'metformin'.
    """
    text = _BRAND.sub("", display or "").strip()
    while _LEAD.match(text):
        text = _LEAD.sub("", text, count=1)
    if re.match(r"^Vitamin B ?12", text, re.I):
        return "vitamin B12"
    pieces = []
    for part in re.split(r"\s+/\s+", text):  # 'A 5 MG / B 10 MG'; 'MG/ACTUAT' is a unit, not a split
        pieces += part.split("/") if re.fullmatch(r"[A-Za-z]+/[A-Za-z]+", part) else [part]
    parts = [p for p in (_ingredient(p) for p in pieces) if p]
    return "/".join(dict.fromkeys(parts)) or display.lower()


def drug_variants(display: str) -> list[str]:
    """Other names a right answer may use: the full display, its brand, each ingredient."""
    out = [display]
    brand = _BRAND.search(display or "")
    if brand:
        out.append(brand.group(1))
    return out


def words(text: str) -> set[str]:
    """Content words of a name (for 'does the patient hold anything like this' tests)."""
    return {w for w in _WORD.findall((text or "").lower()) if w not in GENERIC_WORDS and len(w) > 2}


def encounter_class_name(code: str) -> str | None:
    return {"EMER": "emergency", "IMP": "inpatient", "AMB": "outpatient"}.get(code)
