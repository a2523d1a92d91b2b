"""Question makers for observation values, dependent observations, counts, age and lookup."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date
from typing import Any

from .records import PatientRecord, Question, age_on, concept_of, day, search, token
from .vocab import BLOOD_PRESSURE, DEPENDENT_PAIRS, OBSERVATIONS, encounter_class_name
from .world import World, now_for

FIRST_VALUE = {"kind": "first", "column": "value"}
TOTAL = {"kind": "total"}


def _q(rec: PatientRecord, category: str, question: str, now: str, answer_type: str, gold, ideal, extract,
       **extra) -> Question:
    return Question(id="", patient_id=rec.id, question=question, now=now, category=category,
                    answer_type=answer_type, gold=gold, ideal=ideal, extract=extract, **extra)


def value_of(obs: dict[str, Any]) -> tuple[Any, str] | None:
    """(gold value, unit): a number, or 'systolic/diastolic' text for blood pressure."""
    q = obs.get("valueQuantity")
    if isinstance(q, dict) and isinstance(q.get("value"), (int, float)):
        return round(float(q["value"]), 4), q.get("unit") or q.get("code") or ""
    comps = {concept_of(c)[1]: c.get("valueQuantity", {}) for c in obs.get("component", [])}
    s, d = comps.get("8480-6", {}).get("value"), comps.get("8462-4", {}).get("value")
    if isinstance(s, (int, float)) and isinstance(d, (int, float)):
        return f"{round(s)}/{round(d)}", comps["8480-6"].get("unit", "mm[Hg]")
    return None


def tolerance(value: Any) -> float:
    if isinstance(value, str):
        return 1.0
    return max(round(abs(value) * 0.01, 4), 0.05) if abs(value) >= 1 else round(abs(value) * 0.05, 6)


def _name(code: str) -> str | None:
    return "blood pressure" if code in BLOOD_PRESSURE else OBSERVATIONS.get(code)


def _series(rec: PatientRecord) -> dict[str, list[dict[str, Any]]]:
    """LOINC code -> the patient's valued observations of it, oldest first (named codes only)."""
    out = defaultdict(list)
    for obs in rec.of("Observation"):
        code = concept_of(obs)[1]
        if _name(code) and day(obs) and value_of(obs) is not None:
            out[code].append(obs)
    return out


def _latest_on_day(items: list[dict[str, Any]], the_day: str) -> dict[str, Any] | None:
    """The one observation on that day, or None when several on it disagree."""
    same = [o for o in items if day(o) == the_day]
    return same[-1] if len({str(value_of(o)) for o in same}) == 1 else None


def _value_row(rec, category, question, now, obs, ideal, extract=FIRST_VALUE) -> Question:
    gold, unit = value_of(obs)
    return _q(rec, category, question, now, "number", gold, ideal, extract, tolerance=tolerance(gold), unit=unit)


LAST_VALUE = ("What was the patient's most recent {x}?", "What is the latest {x} on record?",
              "What was the last recorded {x} for this patient?")
ON_DAY = ("What was the patient's {x} on {d}?", "What {x} value was recorded on {d}?")


def observation_value(rec: PatientRecord, world: World, rng: random.Random) -> list[Question]:
    out = []
    for code, items in sorted(_series(rec).items()):
        days = sorted({day(o) for o in items})
        i = rng.randrange(len(days))
        obs = _latest_on_day(items, days[i])
        if obs is None:
            continue
        codes = token(*concept_of(obs)[:2])
        if rng.random() < 0.7:
            now = now_for(rng, rec, days[i], days[i + 1] if i + 1 < len(days) else None)
            question = rng.choice(LAST_VALUE).format(x=_name(code))
            ideal = [search("Observation", _name(code), code=codes, date_to=now, limit=1)]
        else:
            now = rec.last_day
            question = rng.choice(ON_DAY).format(x=_name(code), d=days[i])
            ideal = [search("Observation", _name(code), code=codes, date_from=days[i], date_to=days[i], limit=1)]
        out.append(_value_row(rec, "observation_value", question, now, obs, ideal))
    return out


DEPENDENT = ("What was the patient's {t} when their {a} was last measured?",
             "At the visit where the {a} was most recently recorded, what was the {t}?",
             "When the patient's {a} was last checked, what was their {t}?")


def dependent_observation(rec: PatientRecord, world: World, rng: random.Random) -> list[Question]:
    series = _series(rec)
    out = []
    for anchor_code, target_code in DEPENDENT_PAIRS:
        anchors, targets = series.get(anchor_code), series.get(target_code)
        if not anchors or not targets:
            continue
        days = sorted({day(o) for o in anchors})
        i = rng.randrange(len(days))
        anchor = anchors[[day(o) for o in anchors].index(days[i])]
        encounter = (anchor.get("encounter") or {}).get("reference")
        same_visit = [o for o in targets if (o.get("encounter") or {}).get("reference") == encounter] if encounter else []
        if not same_visit:
            continue
        target = _latest_on_day(targets, day(same_visit[-1]))
        if target is None or day(target) != days[i]:
            continue  # the visit's target value must be the only one that day (the tools filter by day)
        now = now_for(rng, rec, days[i], days[i + 1] if i + 1 < len(days) else None)
        question = rng.choice(DEPENDENT).format(a=_name(anchor_code), t=_name(target_code))
        ideal = [search("Observation", _name(anchor_code), code=token(*concept_of(anchor)[:2]), date_to=now, limit=1),
                 search("Observation", _name(target_code), code=token(*concept_of(target)[:2]), date_from="$prev.date",
                        date_to="$prev.date", limit=1)]
        out.append(_value_row(rec, "dependent_observation", question, now, target, ideal))
    return out


COUNT_YEAR = ("How many {x} measurements were recorded in {y}?", "How many times was the patient's {x} measured in {y}?")
COUNT_SPAN = ("How many {x} results does the record hold between {a} and {b}?",)
VACCINE_COUNT = ("How many vaccines did the patient receive in {y}?", "How many immunizations were given in {y}?")


def count_period(rec: PatientRecord, world: World, rng: random.Random) -> list[Question]:
    out = []
    for code, items in sorted(_series(rec).items()):
        years = sorted({day(o)[:4] for o in items})
        y = rng.choice(years)
        codes = token(*concept_of(items[0])[:2])
        if rng.random() < 0.7 or len(years) < 2:
            first, last = f"{y}-01-01", f"{y}-12-31"
            question = rng.choice(COUNT_YEAR).format(x=_name(code), y=y)
        else:
            a, b = sorted(rng.sample(years, 2))
            first, last = f"{a}-01-01", f"{b}-12-31"
            question = rng.choice(COUNT_SPAN).format(x=_name(code), a=a, b=b)
        n = sum(first <= day(o) <= last for o in rec.of("Observation") if token(*concept_of(o)[:2]) in codes.split(","))
        out.append(_q(rec, "count_period", question, rec.last_day, "count", n,
                      [search("Observation", _name(code), code=codes, date_from=first, date_to=last, limit=1)], TOTAL))
    imm_years = sorted({day(i)[:4] for i in rec.of("Immunization") if day(i)})
    if imm_years:
        y = rng.choice(imm_years)
        n = sum(day(i)[:4] == y for i in rec.of("Immunization"))
        out.append(_q(rec, "count_period", rng.choice(VACCINE_COUNT).format(y=y), rec.last_day, "count", n,
                      [search("Immunization", date_from=f"{y}-01-01", date_to=f"{y}-12-31", limit=1)], TOTAL))
    return out


ENCOUNTER_PHRASES = ("How many {c}visits did the patient have in {y}?", "How many {c}encounters are recorded for {y}?")
ENCOUNTER_SPAN = ("How many {c}encounters did the patient have between {a} and {b}?",)


def _span_days(enc: dict[str, Any]) -> tuple[str, str]:
    start = day(enc)
    end = str((enc.get("period") or {}).get("end") or "")[:10] or start
    return start, max(start, end)


def encounter_count(rec: PatientRecord, world: World, rng: random.Random) -> list[Question]:
    encs = [e for e in rec.of("Encounter") if day(e)]
    if not encs:
        return []
    years = sorted({day(e)[:4] for e in encs})
    out = []
    classes = sorted({str((e.get("class") or {}).get("code", "")) for e in encs})
    for cls in [None, *[c for c in classes if encounter_class_name(c)]]:
        y = rng.choice(years)
        if cls is None and len(years) > 1 and rng.random() < 0.5:
            a, b = sorted(rng.sample(years, 2))
            first, last, question = f"{a}-01-01", f"{b}-12-31", rng.choice(ENCOUNTER_SPAN).format(c="", a=a, b=b)
        else:
            label = f"{encounter_class_name(cls)} " if cls else ""
            first, last = f"{y}-01-01", f"{y}-12-31"
            question = rng.choice(ENCOUNTER_PHRASES).format(c=label, y=y)
        chosen = [e for e in encs if cls is None or (e.get("class") or {}).get("code") == cls]
        spans = [_span_days(e) for e in chosen]
        if any((s < first <= t) or (s <= last < t) for s, t in spans):
            continue  # an encounter straddles the period's edge: 'how many in it' is ambiguous
        n = sum(first <= s <= last for s, _ in spans)
        out.append(_q(rec, "encounter_count", question, rec.last_day, "count", n,
                      [search("Encounter", category=cls, date_from=first, date_to=last, limit=1)], TOTAL))
    return out


AGE_PHRASES = ("How old is the patient?", "What is the patient's age?", "What is the patient's age in years today?")


def age(rec: PatientRecord, world: World, rng: random.Random) -> list[Question]:
    if not rec.birth_date or not rec.last_day:
        return []
    end = min(rec.last_day, rec.death_day) if rec.death_day else rec.last_day
    two = f"{int(rec.birth_date[:4]) + 2}{rec.birth_date[4:10]}".replace("-02-29", "-03-01")  # no 'age 0'
    start = max(two, min((day(e) for e in rec.of("Encounter") if day(e)), default=end))
    if start > end:
        return []
    now = min(now_for(rng, rec, start, None), end)
    return [_q(rec, "age", rng.choice(AGE_PHRASES), now, "number", age_on(rec.birth_date, now),
               [{"tool": "patient_summary", "args": {}}], {"kind": "age"}, tolerance=0)]


LOOKUP = ("What is the patient id of {n}, born {b}?", "Find {n} (date of birth {b}) and give their patient id.",
          "Which patient id belongs to {n}, born on {b}?")


def _long_date(iso: str) -> str:
    d = date.fromisoformat(iso[:10])
    return f"{d.strftime('%B')} {d.day}, {d.year}"


def patient_lookup(rec: PatientRecord, world: World, rng: random.Random) -> list[Question]:
    if not rec.name or not rec.birth_date:
        return []
    shown = rng.choice([rec.birth_date, _long_date(rec.birth_date)])
    question = rng.choice(LOOKUP).format(n=rec.name, b=shown)
    q = _q(rec, "patient_lookup", question, rec.last_day, "text", rec.id,
           [{"tool": "find_patient", "args": {"name": rec.name, "birth_date": rec.birth_date}}],
           {"kind": "first", "column": "id"})
    q.patient_id = ""
    return [q]

