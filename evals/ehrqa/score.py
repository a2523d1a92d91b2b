"""Score free-text answers against the golds: pure functions, no model, no store.

yes/no: the answer's first yes or no (else a plain negation means no); numbers: any number
in the answer within the tolerance, converted when it states a unit of the same kind (kg/lb,
cm/in, °C/°F) and refused when it states a unit of another kind; dates: right when the
answer holds the gold day in any common format; names: every word of the gold (or of an
``accept`` variant) appears, ignoring case, punctuation, titles and drug strengths; counts:
an integer (or number word) equal to the gold, years named in the question aside.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import date
from typing import Any, Iterable, Mapping

_ID = re.compile(r"\b[A-Z][A-Za-z]+/[A-Za-z0-9\-.]*[0-9\-][A-Za-z0-9\-.]*|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_ISO = re.compile(r"\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[T ][\d:.+\-Z]*)?")
_DMY = re.compile(r"\b(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})\b")
_MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_MON = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_MDY_TEXT = re.compile(rf"\b{_MON}\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", re.I)
_DMY_TEXT = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MON},?\s+(\d{{4}})\b", re.I)
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:,\d{3})*(?:\.\d+)?")
_UNIT_AFTER = re.compile(r"\s*(%|°\s?[CF]\b|[a-zA-Z\[\]{}/µ²^0-9.]*[a-zA-Z%\]}²][a-zA-Z\[\]{}/µ²^0-9.]*)")
_PAIR = re.compile(r"(\d+(?:\.\d+)?)\s*(?:/|over)\s*(\d+(?:\.\d+)?)")
_WORDS = {w: i for i, w in enumerate("""zero one two three four five six seven eight nine ten eleven twelve thirteen
    fourteen fifteen sixteen seventeen eighteen nineteen twenty""".split())}
_NEGATION = re.compile(r"\b(no|not|never|none|neither|nor|without|absent|doesn't|hasn't|isn't|wasn't|didn't|"
                       r"haven't|aren't|cannot|can't|unable|unknown|unclear)\b", re.I)
_TITLES = frozenset({"dr", "doctor", "mr", "mrs", "ms", "miss", "prof", "md", "do", "np", "pa", "rn"})
_DRUG_NOISE = re.compile(r"\b\d+(\.\d+)?\s*(mg|ml|mcg|g|hr|actuat|%)?\b|\b(mg|ml|mcg|hr|actuat|oral|tablet|tablets|"
                         r"capsule|extended|release|solution|injection|inhaler|metered|dose|day|pack)\b", re.I)

#: Unit -> (kind, factor to the kind's base unit); temperatures are converted apart.
_UNITS = {"kg": ("mass", 1.0), "kilograms": ("mass", 1.0), "g": ("mass", 0.001), "lb": ("mass", 0.45359237),
          "lbs": ("mass", 0.45359237), "pounds": ("mass", 0.45359237), "cm": ("length", 1.0), "m": ("length", 100.0),
          "mm": ("length", 0.1), "in": ("length", 2.54), "inches": ("length", 2.54), "cel": ("temp", 1.0),
          "°c": ("temp", 1.0), "c": ("temp", 1.0), "degf": ("temp", 1.0), "°f": ("temp", 1.0), "f": ("temp", 1.0),
          "kg/m2": ("bmi", 1.0), "kg/m^2": ("bmi", 1.0), "kg/m²": ("bmi", 1.0), "mmhg": ("pressure", 1.0),
          "mm[hg]": ("pressure", 1.0), "%": ("percent", 1.0), "mg/dl": ("mg/dl", 1.0), "mmol/l": ("mmol/l", 1.0)}


def _strip_ids(text: str) -> str:
    return _ID.sub(" ", text or "")


# -- dates -------------------------------------------------------------------------------------------

def _day(y: int, m: int, d: int) -> str | None:
    try:
        return date(y, m, d).isoformat()
    except ValueError:
        return None


def dates_in(text: str) -> set[str]:
    """Every day the text names, as YYYY-MM-DD (an ambiguous 03/04/2020 gives both readings)."""
    text = _strip_ids(text)
    found: set[str | None] = set()
    for y, m, d in _ISO.findall(text):
        found.add(_day(int(y), int(m), int(d)))
    for a, b, y in _DMY.findall(text):
        found |= {_day(int(y), int(a), int(b)), _day(int(y), int(b), int(a))}
    for mon, d, y in _MDY_TEXT.findall(text):
        found.add(_day(int(y), _MONTHS[mon[:3].lower()], int(d)))
    for d, mon, y in _DMY_TEXT.findall(text):
        found.add(_day(int(y), _MONTHS[mon[:3].lower()], int(d)))
    return {f for f in found if f}


def _without_dates(text: str) -> str:
    text = _strip_ids(text)
    for pattern in (_ISO, _DMY, _MDY_TEXT, _DMY_TEXT):
        text = pattern.sub(" ", text)
    return text


# -- yes/no, numbers, counts, names ------------------------------------------------------------------

def yes_no(text: str) -> str | None:
    """'yes' / 'no' from a leading yes or no; else a negation or doubt means 'no' and a plain
    statement ('The patient has asthma (Condition/...)') means 'yes'; nothing at all is None."""
    text = (text or "").strip()
    m = re.search(r"\b(yes|no)\b", text, re.I)
    if m and m.start() < 40:
        return m.group(1).lower()
    if _NEGATION.search(text):
        return "no"
    return "yes" if text else None


def numbers_with_units(text: str) -> list[tuple[float, str]]:
    """(number, unit stated right after it or '') for each number outside dates and ids."""
    text = _without_dates(text)
    out = []
    for m in _NUMBER.finditer(text):
        value = float(m.group(0).replace(",", ""))
        unit = _UNIT_AFTER.match(text, m.end())
        out.append((value, unit.group(1).strip().lower() if unit else ""))
    return out


def _to_gold_unit(value: float, unit: str, gold_unit: str) -> float | None:
    """The value in the gold's unit; None when the stated unit is of another kind."""
    said, want = _UNITS.get(unit.replace(" ", "")), _UNITS.get((gold_unit or "").lower().replace(" ", ""))
    if not said or not want:
        return value
    if said[0] != want[0]:
        return None
    if said[0] == "temp":
        said_f, want_f = unit.endswith("f"), (gold_unit or "").lower().endswith("f")
        if said_f and not want_f:
            return (value - 32) * 5 / 9
        if want_f and not said_f:
            return value * 9 / 5 + 32
        return value
    return value * said[1] / want[1]


def number_matches(answer: str, gold: Any, tolerance: float | None = None, unit: str | None = None) -> bool:
    tol = float(tolerance) if tolerance is not None else 0.0
    if isinstance(gold, str) and "/" in gold:  # blood pressure 'systolic/diastolic'
        s, d = (float(x) for x in gold.split("/"))
        return any(abs(float(a) - s) <= tol and abs(float(b) - d) <= tol for a, b in _PAIR.findall(_without_dates(answer)))
    target = float(gold)
    for value, said in numbers_with_units(answer):
        converted = _to_gold_unit(value, said, unit or "")
        if converted is not None and abs(converted - target) <= tol + 1e-9:
            return True
    return False


def count_matches(answer: str, gold: int, question: str = "") -> bool:
    years = set(re.findall(r"\b\d{4}\b", question or ""))
    text = _without_dates(answer)
    values = {int(float(v.replace(",", ""))) for v in _NUMBER.findall(text) if v.replace(",", "") not in years
              and float(v.replace(",", "")).is_integer()}
    values |= {n for w, n in _WORDS.items() if re.search(rf"\b{w}\b", text, re.I)}
    if re.search(r"\b(no|none|never|not any)\b", text, re.I) and not values - {0}:
        values.add(0)
    return int(gold) in values


def name_words(text: str) -> set[str]:
    text = _DRUG_NOISE.sub(" ", _strip_ids(text or "").lower())
    return {w for w in re.findall(r"[a-z0-9]+", text) if w not in _TITLES and w not in ("and", "or", "of")}


def name_matches(answer: str, gold: str, accept: Iterable[str] = ()) -> bool:
    said = name_words(answer)
    for option in [gold, *accept]:
        wanted = name_words(option)
        if wanted and wanted <= said:
            return True
    return False


def date_matches(answer: str, gold: str) -> bool:
    return str(gold)[:10] in dates_in(answer)


def is_correct(question: Mapping[str, Any], answer: str) -> bool:
    """Whether ``answer`` is right for one question row (a dict as in the JSONL)."""
    kind, gold = question.get("answer_type"), question.get("gold")
    answer = answer or ""
    if kind == "yesno":
        return yes_no(answer) == str(gold).lower()
    if kind == "number":
        return number_matches(answer, gold, question.get("tolerance"), question.get("unit"))
    if kind == "count":
        return count_matches(answer, int(gold), question.get("question", ""))
    if kind == "date":
        return date_matches(answer, str(gold))
    if kind == "name":
        return name_matches(answer, str(gold), question.get("accept") or [])
    return str(gold).lower() in answer.lower() or any(str(a).lower() in answer.lower() for a in question.get("accept") or [])


# -- a run's summary -----------------------------------------------------------------------------------

def score_rows(questions: Iterable[Mapping[str, Any]], answers: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Accuracy by category and overall, per-question costs and statuses.

    A question without an answer row counts as wrong with status 'missing'; an answer whose
    run did not complete is wrong whatever its text says."""
    by_id = {str(a.get("id")): a for a in answers}
    cats: dict[str, dict[str, int]] = defaultdict(lambda: {"n": 0, "correct": 0})
    statuses: Counter = Counter()
    costs = defaultdict(float)
    rows = []
    for q in questions:
        a = by_id.get(str(q["id"]))
        status = (a or {}).get("status") or ("missing" if a is None else "completed")
        ok = a is not None and status == "completed" and is_correct(q, str(a.get("answer") or ""))
        cats[q["category"]]["n"] += 1
        cats[q["category"]]["correct"] += ok
        statuses[status] += 1
        for key in ("input_tokens", "output_tokens", "model_calls", "steps", "seconds"):
            costs[key] += float((a or {}).get(key) or 0)
        costs["tool_calls"] += float((a or {}).get("tool_calls") or 0)
        rows.append({"id": q["id"], "category": q["category"], "correct": ok, "status": status})
    n = len(rows)
    per_q = {k: round(v / n, 2) if n else 0.0 for k, v in costs.items()}
    return {"n": n, "correct": sum(r["correct"] for r in rows),
            "accuracy": round(sum(r["correct"] for r in rows) / n, 4) if n else 0.0,
            "categories": {c: {**v, "accuracy": round(v["correct"] / v["n"], 4)} for c, v in sorted(cats.items())},
            "per_question": per_q, "statuses": dict(statuses), "rows": rows}
