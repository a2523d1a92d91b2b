"""Plain-text names -> the codes a patient's record actually holds.

Small models invent codes (asked for HbA1c, a 1.5B model sent a wrong LOINC code), so the
EHR tools accept names and resolve them here against the (system, code, display) triples
present in the patient's record for one resource type. Matching is conservative: a whole
phrase or all of the query's words must appear in a display name (a word may carry a small
typo), a synonym may expand a clinical abbreviation, and anything else is "no match" with
the closest names the record does hold, never a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

from rapidfuzz import fuzz, process
from rapidfuzz.utils import default_process

from tools.fhir.search_params import CODE_PARAM

Candidate = tuple[str | None, str | None, str | None]  # system, code, display

THRESHOLD = 85.0  # lowest score that counts as a match
MARGIN = 2.0      # keep every candidate within this of the best score
TYPO_RATIO = 88.0  # a query word this similar to a display word counts as present

#: Common clinical names and abbreviations -> display phrases (and, where the concept has
#: well-known codes, those codes: a candidate holding one of them matches outright).
SYNONYMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "hba1c": (("hemoglobin a1c", "glycated hemoglobin", "glycohemoglobin"), ("4548-4", "17856-6", "4549-2")),
    "bp": (("blood pressure",), ("85354-9", "55284-4", "8480-6", "8462-4", "35094-2")),
    "bmi": (("body mass index",), ("39156-5",)),
    "ldl": (("cholesterol in ldl", "ldl cholesterol", "low density lipoprotein"), ("18262-6", "13457-7", "2089-1")),
    "hdl": (("cholesterol in hdl", "hdl cholesterol", "high density lipoprotein"), ("2085-9",)),
    "egfr": (("glomerular filtration rate",), ("33914-3", "62238-1", "48643-1", "48642-3", "69405-9")),
    "creatinine": (("creatinine mass volume in serum", "creatinine"), ("2160-0", "38483-4")),
    "flu": (("influenza",), ()),
    "mmr": (("mmr", "measles"), ("03", "94")),
    "tdap": (("tdap", "td adult", "tetanus"), ("115", "113", "09", "138", "139")),
    "heart rate": (("heart rate", "pulse rate"), ("8867-4",)),
    "temperature": (("body temperature", "oral temperature", "temperature"), ("8310-5", "8331-1")),
    "spo2": (("oxygen saturation",), ("59408-5", "2708-6")),
    "weight": (("body weight",), ("29463-7",)),
    "height": (("body height",), ("8302-2",)),
    "glucose": (("glucose",), ("2339-0", "2345-7")),
    "respiratory rate": (("respiratory rate",), ("9279-1",)),
    "cholesterol": (("cholesterol mass volume", "cholesterol"), ("2093-3",)),
    "triglycerides": (("triglyceride",), ("2571-8",)),
    "hypertension": (("hypertension",), ()),
    "diabetes": (("diabetes",), ()),
    "ckd": (("chronic kidney disease",), ()),
    "heart failure": (("heart failure",), ()),
    "covid": (("covid 19", "sars cov 2"), ()),
    "pneumococcal": (("pneumococcal",), ()),
    "hep b": (("hep b", "hepatitis b"), ()),
    "emergency": (("emergency",), ()),
    "checkup": (("check up", "well child", "wellness", "general examination"), ()),
    "x-ray": (("x ray", "radiograph"), ()),
    "bnp": (("natriuretic peptide",), ("33762-6", "30934-4")),
    "varicella": (("varicella", "chickenpox"), ("21",)),
    "hydrochlorothiazide": (("hydrochlorothiazide",), ()),
    "aspirin": (("aspirin",), ()),
}
#: Other spellings of the SYNONYMS keys (after normalising: lower case, punctuation as spaces).
ALIASES: dict[str, str] = {
    "a1c": "hba1c", "hb a1c": "hba1c", "hgb a1c": "hba1c", "hemoglobin a1c": "hba1c", "glycated hemoglobin": "hba1c",
    "blood pressure": "bp", "systolic": "bp", "diastolic": "bp", "body mass index": "bmi",
    "ldl c": "ldl", "ldl cholesterol": "ldl", "hdl c": "hdl", "hdl cholesterol": "hdl",
    "gfr": "egfr", "e gfr": "egfr", "cr": "creatinine", "creat": "creatinine", "serum creatinine": "creatinine",
    "flu shot": "flu", "flu vaccine": "flu", "influenza vaccine": "flu", "influenza": "flu",
    "td": "tdap", "tetanus": "tdap", "measles": "mmr", "hr": "heart rate", "pulse": "heart rate",
    "temp": "temperature", "body temperature": "temperature", "oxygen saturation": "spo2", "o2 sat": "spo2",
    "o2 saturation": "spo2", "sao2": "spo2", "pulse ox": "spo2", "pulse oximetry": "spo2",
    "body weight": "weight", "wt": "weight", "body height": "height", "ht": "height", "length": "height",
    "sugar": "glucose", "blood sugar": "glucose", "blood glucose": "glucose", "rr": "respiratory rate",
    "resp rate": "respiratory rate", "total cholesterol": "cholesterol", "tg": "triglycerides",
    "triglyceride": "triglycerides", "htn": "hypertension", "high blood pressure": "hypertension",
    "dm": "diabetes", "t2dm": "diabetes", "dm2": "diabetes", "type 2 diabetes": "diabetes",
    "chronic kidney disease": "ckd", "hf": "heart failure", "chf": "heart failure",
    "covid 19": "covid", "sars cov 2": "covid", "pneumonia vaccine": "pneumococcal", "pcv": "pneumococcal",
    "hepatitis b": "hep b", "ed": "emergency", "er": "emergency", "ed visit": "emergency", "er visit": "emergency",
    "check up": "checkup", "physical": "checkup", "annual physical": "checkup", "wellness visit": "checkup",
    "xray": "x-ray", "x ray": "x-ray", "chest x ray": "x-ray",
    "nt probnp": "bnp", "ntprobnp": "bnp", "pro bnp": "bnp", "probnp": "bnp", "chickenpox": "varicella",
    "chicken pox": "varicella", "vzv": "varicella", "hctz": "hydrochlorothiazide", "asa": "aspirin",
}
#: Words that say nothing about *which* record is meant.
FILLER = frozenset("""a an the of for in on at by to and or my her his their patient patients s
    level levels test tests testing result results value values reading readings measurement measurements
    lab labs history recent latest last most all any trend trends over time record records""".split())
#: Words too generic to match on alone (they appear in many lab names).
GENERIC = frozenset("blood serum plasma urine mass volume ratio total panel by in of with".split())

_CODE_LIKE = re.compile(r"^(\d[\d.\-]*\d|\d|[A-Z]\d\d(\.\w+)?)$")


@dataclass
class Match:
    system: str | None
    code: str
    display: str | None
    score: float

    @property
    def token(self) -> str:
        return f"{self.system}|{self.code}" if self.system else self.code

    def describe(self) -> str:
        return f"{self.token} {self.display or ''}".strip()


@dataclass
class Resolution:
    query: str
    matches: list[Match] = field(default_factory=list)
    message: str = ""
    verbatim: bool = False  # the query was used as code(s) as given

    @property
    def codes(self) -> list[str]:
        """Token search values (``system|code``), for a FHIR ``code`` parameter."""
        return [m.token for m in self.matches]

    @property
    def score(self) -> float:
        return max((m.score for m in self.matches), default=0.0)

    @property
    def ok(self) -> bool:
        return bool(self.matches)

    def param_value(self) -> str:
        return ",".join(dict.fromkeys(self.codes))


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


def _words(text: str) -> list[str]:
    return [w for w in normalise(text).split() if w not in FILLER]


def _phrase_in(phrase: str, display_norm: str) -> int:
    """0: absent; 2: display starts with the phrase; 1: the phrase is elsewhere (whole words)."""
    if not phrase:
        return 0
    if display_norm == phrase or display_norm.startswith(phrase + " "):
        return 2
    return 1 if f" {phrase} " in f" {display_norm} " else 0


def _word_present(word: str, display_words: list[str]) -> bool:
    if word in display_words:
        return True
    return len(word) >= 5 and any(len(d) >= 5 and fuzz.ratio(word, d) >= TYPO_RATIO for d in display_words)


def score(phrase: str, display: str) -> float:
    """How well one (normalised) query phrase names a display: 0-100."""
    d = normalise(display)
    if not phrase or not d:
        return 0.0
    if phrase == d:
        return 100.0
    words = [w for w in phrase.split() if w not in FILLER]
    content = [w for w in words if w not in GENERIC]
    if not content:  # 'blood', 'serum level': names no particular record
        return 0.0
    where = _phrase_in(phrase, d)
    if where:
        return 97.0 if where == 2 else 93.0
    dwords = d.split()
    if all(_word_present(w, dwords) for w in words):
        exact = all(w in dwords for w in words)
        return 91.0 if exact else 88.0
    # Whole-string fuzzy similarity, for a typo spanning words; strict threshold.
    ratio = fuzz.token_set_ratio(phrase, d)
    return float(ratio) * 0.9 if ratio >= 95 else 0.0


def expansions(query: str) -> tuple[list[str], set[str]]:
    """The phrases to try for a query (itself plus synonyms) and any synonym codes."""
    q = " ".join(_words(query)) or normalise(query)
    phrases, codes = [q], set()
    keys = {ALIASES.get(q, q)}
    tokens = q.split()
    if len(tokens) > 1 and not keys & SYNONYMS.keys():  # "hba1c ldl": per-word synonyms
        for t in tokens:
            key = ALIASES.get(t, t)
            if key in SYNONYMS and t not in GENERIC:
                keys.add(key)
    for key in keys:
        if key in SYNONYMS:
            texts, known = SYNONYMS[key]
            phrases += [normalise(t) for t in texts]
            codes |= set(known)
    return list(dict.fromkeys(p for p in phrases if p)), codes


def _is_code(part: str, codes: set[str]) -> bool:
    return "|" in part or part in codes


def resolve_codes(text: str, candidates: Iterable[Candidate], limit: int = 8) -> Resolution:
    """Resolve ``text`` (a code, ``system|code``, a comma list, or a plain name such as
    'HbA1c') against the (system, code, display) the record holds. Returns the matching
    codes with a sentence saying what was matched, or no codes and the closest names."""
    text = (text or "").strip()
    cands = [(s, c, d) for s, c, d in candidates if c]
    present = {c for _, c, _ in cands}
    if not text:
        return Resolution(text, message="empty code/name")
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if parts and all(_is_code(p, present) for p in parts):
        return _as_codes(text, parts, cands)
    result = _by_name(text, cands, limit)
    if not result.ok and len(parts) > 1:  # "HbA1c, LDL": each name on its own
        found = [_by_name(p, cands, limit) for p in parts]
        matches = [m for r in found for m in r.matches]
        if matches:
            result = Resolution(text, _dedupe(matches), "; ".join(r.message for r in found))
    if not result.ok and all(_is_code(p, present) or _CODE_LIKE.match(p) for p in parts):
        # A real-looking code the record does not hold: searched as given (it may sit in a
        # component, or the record holds none of it); the caller says so.
        res = _as_codes(text, parts, cands)
        res.message += " (not among the codes this record holds for this type)"
        return res
    return result


def _as_codes(text: str, parts: list[str], cands: list[Candidate]) -> Resolution:
    matches = []
    for part in parts:
        if "|" in part:
            system, _, code = part.partition("|")
            display = next((d for s, c, d in cands if c == code and (not system or s == system)), None)
            matches.append(Match(system or None, code, display, 100.0))
            continue
        hits = [(s, c, d) for s, c, d in cands if c == part]
        matches += [Match(s, c, d, 100.0) for s, c, d in hits] or [Match(None, part, None, 100.0)]
    matches = _dedupe(matches)
    return Resolution(text, matches, f"used code {', '.join(m.describe() for m in matches)}", verbatim=True)


def _dedupe(matches: list[Match]) -> list[Match]:
    seen, out = set(), []
    for m in matches:
        if (m.system, m.code) not in seen:
            seen.add((m.system, m.code))
            out.append(m)
    return out


def _by_name(text: str, cands: list[Candidate], limit: int) -> Resolution:
    phrases, known = expansions(text)
    scored: list[Match] = []
    for system, code, display in cands:
        best = 100.0 if code in known else max((score(p, display or "") for p in phrases), default=0.0)
        if best >= THRESHOLD:
            scored.append(Match(system, code, display, best))
    if not scored:
        return Resolution(text, message=f"no match for '{text}' in this record; {closest(text, cands)}")
    top = max(m.score for m in scored)
    keep = sorted((m for m in scored if m.score >= top - MARGIN), key=lambda m: -m.score)[:limit]
    keep = _dedupe(keep)
    return Resolution(text, keep, f"matched '{text}' to {'; '.join(m.describe() for m in keep)}")


def closest(text: str, cands: list[Candidate], n: int = 5) -> str:
    """A sentence naming the few display names in the record nearest to ``text``."""
    names = list(dict.fromkeys(d for _, _, d in cands if d))
    if not names:
        return "the record holds no coded entries of this type"
    picks = process.extract(text, names, scorer=fuzz.WRatio, processor=default_process, limit=n)
    return "closest names the record holds: " + "; ".join(name for name, _, _ in picks)


# -- record type, status and category names ------------------------------------------------

CLINICAL = tuple(CODE_PARAM)
TYPE_ALIASES = {
    "allergy": "AllergyIntolerance", "allergies": "AllergyIntolerance", "medication": "MedicationRequest",
    "medications": "MedicationRequest", "meds": "MedicationRequest", "prescription": "MedicationRequest",
    "prescriptions": "MedicationRequest", "vaccine": "Immunization", "vaccines": "Immunization",
    "vaccination": "Immunization", "vaccinations": "Immunization", "immunizations": "Immunization",
    "lab": "Observation", "labs": "Observation", "vitals": "Observation", "observations": "Observation",
    "problem": "Condition", "problems": "Condition", "diagnosis": "Condition", "diagnoses": "Condition",
    "conditions": "Condition", "visit": "Encounter", "visits": "Encounter", "encounters": "Encounter",
    "procedures": "Procedure", "note": "DocumentReference", "notes": "DocumentReference",
    "documents": "DocumentReference", "report": "DiagnosticReport", "reports": "DiagnosticReport",
    "imaging": "ImagingStudy", "order": "ServiceRequest", "orders": "ServiceRequest", "careplans": "CarePlan",
}
STATUS_PARAM = {"Condition": "clinical-status", "AllergyIntolerance": "clinical-status"}
CATEGORY_ALIASES = {
    "Observation": {"lab": "laboratory", "labs": "laboratory", "vitals": "vital-signs", "vital": "vital-signs",
                    "vital signs": "vital-signs", "social history": "social-history"},
    "DiagnosticReport": {"lab": "LAB", "labs": "LAB", "laboratory": "LAB"},
    "Condition": {"problem": "problem-list-item", "problem list": "problem-list-item",
                  "diagnosis": "encounter-diagnosis"},
    "Encounter": {"ambulatory": "AMB", "outpatient": "AMB", "emergency": "EMER", "inpatient": "IMP"},
}


def clinical_type(resource_type: str) -> str:
    """'Observation', 'observation' or an everyday name ('allergies', 'meds') -> the type."""
    name = str(resource_type).strip()
    by_lower = {t.lower(): t for t in CLINICAL}
    found = by_lower.get(name.lower()) or TYPE_ALIASES.get(name.lower())
    if not found:
        raise ValueError(f"resource_type must be one of {', '.join(CLINICAL)} (got '{resource_type}')")
    return found


def category_value(resource_type: str, category: str) -> str:
    """'labs' -> 'laboratory' (Observation), 'emergency' -> 'EMER' (Encounter class), ..."""
    aliases = CATEGORY_ALIASES.get(resource_type, {})
    return ",".join(aliases.get(c.strip().lower(), c.strip()) for c in category.split(","))


def looks_like_code(text: str) -> bool:
    """'4548-4', '860975', 'E11.9': a code rather than a name."""
    return bool(_CODE_LIKE.match(text.strip()))
