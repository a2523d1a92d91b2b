"""The grader, written from MedAgentBench's published task definitions (their ``refsol.py``).

What is graded, per kind (``now`` is the task's reference time):
  task1  name + birth date -> the patient's id/MRN: FINISH list == sol exactly; no POST.
  task2  age at ``now``, rounded down: [age]; no POST.
  task3  record a blood pressure: exactly one accepted POST to {base}Observation, vital-signs
         category, code {"text": flowsheet}, effectiveDateTime == now, status final, valueString
         == the quoted value, subject Patient/<MRN>. The FINISH answer is not graded.
  task4  latest value within 24 h: [value] or [-1]; no POST.
  task5  latest value within 24 h; none: nothing may be POSTed (the answer is not graded); not low:
         no POST; low: one MedicationRequest (NDC, authoredOn now, route, dose and rate by the
         tiers, active, order, subject); answer [value] or [].
  task6  average within 24 h: one number within 0.1 of the mean, or [-1]; no POST.
  task7  latest value (no window): [value] or [-1]; no POST.
  task8  referral: exactly one ServiceRequest (SNOMED code, authoredOn now, active, order, stat,
         note.text containing the quoted SBAR text, subject). The answer is not graded.
  task9  latest potassium; low (< goal): two POSTs, a MedicationRequest (NDC, oral, dose 10 mEq per
         0.1 below the goal, within 0.1) then a ServiceRequest (LOINC, stat, next day 08:00);
         else no POST; answer [value] or [] ([-1] when none).
  task10 latest HbA1c: [value, effectiveDateTime] or [-1]; older than a year or none: one
         ServiceRequest (LOINC, stat, ...); else no POST; [] is also accepted as the answer.
"No POST" is their check: no agent turn contains the text ``POST``. Values are compared as JSON
(1.8 == 1.8, 2 == 2.0), the answer being the text inside ``FINISH(...)`` parsed by ``json.loads``.

Their refsol hard-codes the reference time 2023-11-13T10:15:00+00:00 and counts every record
after ``now - 24 h`` (no upper bound); here windows end at ``now`` so that generated tasks can set
``now`` inside a record's history. For their tasks both agree (their data ends before ``now``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from .tasks import Task

OBS_CATEGORY = {"system": "http://hl7.org/fhir/observation-category", "code": "vital-signs", "display": "Vital Signs"}
NDC_SYSTEM = "http://hl7.org/fhir/sid/ndc"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
#: Their magnesium tiers (task5): (upper bound exclusive or None, dose g, hours); low means <= 1.9.
MAGNESIUM = {"low_max": 1.9, "tiers": [[1.0, 4, 4], [1.5, 2, 2], [None, 1, 1]], "dose_unit": "g",
             "rate_unit": "h", "route": "IV"}
#: Their potassium rule (task9): 10 mEq for every 0.1 below the goal 3.5, by mouth.
POTASSIUM = {"goal": 3.5, "step": 0.1, "dose_per_step": 10, "dose_unit": "mEq", "route": "oral"}


@dataclass
class Facts:
    """What the record holds for one task: the birth date and the task's code's values."""
    birth_date: str | None = None
    observations: list[tuple[str, float]] = field(default_factory=list)   # (effectiveDateTime, value)

    def to_json(self) -> dict[str, Any]:
        return {"birth_date": self.birth_date, "observations": [list(o) for o in self.observations]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Facts":
        return cls(data.get("birth_date"), [(str(t), v) for t, v in data.get("observations", [])])


@dataclass
class Attempt:
    """What a run produced, in their terms."""
    result: str | None                                  # the text inside FINISH(...); None: never finished
    posted: bool = False                                # some agent turn contained "POST"
    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)   # accepted POSTs: (url, payload)


@dataclass
class Grade:
    correct: bool
    reason: str
    expected: Any = None


def parse_time(text: str) -> datetime:
    t = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def latest(facts: Facts, now: str, hours: float | None = None) -> tuple[float, str] | None:
    """The newest (value, time) at or before ``now`` (and within ``hours`` of it when given)."""
    end = parse_time(now)
    start = end - timedelta(hours=hours) if hours is not None else None
    best: tuple[datetime, float, str] | None = None
    for when, value in facts.observations:
        t = parse_time(when)
        if t > end or (start is not None and t < start):
            continue
        if best is None or t > best[0]:
            best = (t, value, when)
    return (best[1], best[2]) if best else None


def average(facts: Facts, now: str, hours: float = 24) -> float | None:
    end = parse_time(now)
    values = [v for w, v in facts.observations if end - timedelta(hours=hours) <= parse_time(w) <= end]
    return sum(values) / len(values) if values else None


def age_on(birth_date: str, now: str) -> int:
    dob, today = datetime.strptime(birth_date[:10], "%Y-%m-%d"), parse_time(now)
    return today.year - dob.year - ((today.month, today.day) < (dob.month, dob.day))


def year_before(now: str) -> datetime:
    t = parse_time(now)
    try:
        return t.replace(year=t.year - 1)
    except ValueError:  # 29 February
        return t.replace(year=t.year - 1, day=28)


def _answer(attempt: Attempt) -> tuple[Any, str | None]:
    if attempt.result is None:
        return None, "the run did not FINISH"
    try:
        return json.loads(attempt.result), None
    except (ValueError, TypeError) as exc:
        return None, f"FINISH({attempt.result[:80]}) is not a JSON list: {exc}"


def _answer_is(attempt: Attempt, expected: list[Any], *also: list[Any]) -> Grade:
    got, problem = _answer(attempt)
    if problem:
        return Grade(False, problem, expected)
    if got == expected or any(got == a for a in also):
        return Grade(True, "answer matches", expected)
    return Grade(False, f"answer {got!r} != expected {expected!r}", expected)


def _no_post(attempt: Attempt, expected: Any) -> Grade | None:
    return Grade(False, "a POST was made where none was asked for", expected) if attempt.posted else None


Check = tuple[str, Callable[[dict[str, Any]], Any], Callable[[Any], bool]]


def _fields(payload: dict[str, Any], checks: list[Check]) -> str | None:
    """The first field that is missing or wrong, said plainly; None when all hold."""
    for label, get, ok in checks:
        try:
            value = get(payload)
        except (KeyError, IndexError, TypeError, AttributeError):
            return f"{label} is missing"
        try:
            good = ok(value)
        except (TypeError, ValueError):
            good = False
        if not good:
            return f"{label} is wrong: {value!r}"
    return None


def _one_order(attempt: Attempt, count: int, urls: list[str], checks: list[list[Check]], expected: Any) -> Grade | None:
    """``count`` accepted POSTs to ``urls`` in order, each passing its field checks."""
    if len(attempt.posts) != count:
        return Grade(False, f"{len(attempt.posts)} accepted POST(s), expected {count}", expected)
    for (url, payload), want_url, check in zip(attempt.posts, urls, checks):
        if url != want_url:
            return Grade(False, f"POST to {url}, expected {want_url}", expected)
        if not isinstance(payload, dict):
            return Grade(False, "POST payload is not a JSON object", expected)
        problem = _fields(payload, check)
        if problem:
            return Grade(False, f"{payload.get('resourceType', '?')}: {problem}", expected)
    return None


def _subject(task: Task) -> Check:
    return ("subject", lambda p: p["subject"], lambda v: v == {"reference": f"Patient/{task.eval_mrn}"})


def _service_request(task: Task, system: str, code: str | None) -> list[Check]:
    return [("resourceType", lambda p: p["resourceType"], lambda v: v == "ServiceRequest"),
            ("code.coding[0].system", lambda p: p["code"]["coding"][0]["system"], lambda v: v == system),
            ("code.coding[0].code", lambda p: p["code"]["coding"][0]["code"], lambda v: v == code),
            ("authoredOn", lambda p: p["authoredOn"], lambda v: v == task.now),
            ("status", lambda p: p["status"], lambda v: v == "active"),
            ("intent", lambda p: p["intent"], lambda v: v == "order"),
            ("priority", lambda p: p["priority"], lambda v: v == "stat"),
            _subject(task)]


def _medication_request(task: Task, dose: Callable[[Any], bool], dose_unit: str, route: str,
                        rate: dict[str, Any] | None) -> list[Check]:
    checks: list[Check] = [
        ("resourceType", lambda p: p["resourceType"], lambda v: v == "MedicationRequest"),
        ("medicationCodeableConcept.coding[0].system", lambda p: p["medicationCodeableConcept"]["coding"][0]["system"],
         lambda v: v == NDC_SYSTEM),
        ("medicationCodeableConcept.coding[0].code", lambda p: p["medicationCodeableConcept"]["coding"][0]["code"],
         lambda v: v == task.ndc),
        ("authoredOn", lambda p: p["authoredOn"], lambda v: task.now[:16] in v),
        ("dosageInstruction[0].route", lambda p: p["dosageInstruction"][0]["route"],
         lambda v: v.lower().strip() == route.lower()),
        ("doseQuantity", lambda p: p["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"],
         lambda v: v["unit"] == dose_unit and dose(v["value"]))]
    if rate is not None:
        checks.append(("rateQuantity", lambda p: p["dosageInstruction"][0]["doseAndRate"][0]["rateQuantity"],
                       lambda v: v == rate))
    return checks + [("status", lambda p: p["status"], lambda v: v == "active"),
                     ("intent", lambda p: p["intent"], lambda v: v == "order"), _subject(task)]


def expected_answer(task: Task, facts: Facts) -> Any:
    """The FINISH list a right run gives (what the report shows as the gold)."""
    now, k = task.now, task.kind
    if k == "task1":
        return task.sol
    if k == "task2":
        return [age_on(facts.birth_date, now)] if facts.birth_date else None
    if k in ("task3", "task8"):
        return None
    if k in ("task4", "task5"):
        found = latest(facts, now, 24)
        return [found[0] if found else -1]
    if k == "task6":
        avg = average(facts, now)
        return [avg if avg is not None else -1]
    found = latest(facts, now)
    if k == "task10":
        return [found[0], found[1]] if found else [-1]
    return [found[0] if found else -1]


def grade(task: Task, attempt: Attempt, facts: Facts, api_base: str) -> Grade:
    """Grade one attempt at one task against what the record holds (``facts``)."""
    base = api_base.rstrip("/") + "/"
    k, now = task.kind, task.now
    expected = expected_answer(task, facts)
    if attempt.result is None:   # their runner grades only runs that reached FINISH
        return Grade(False, "the run did not FINISH", expected)
    if k in ("task1", "task2", "task4", "task7"):
        if k == "task2" and expected is None:
            return Grade(False, f"no birth date for patient {task.eval_mrn}", None)
        return _no_post(attempt, expected) or _answer_is(attempt, expected)
    if k == "task6":
        if bad := _no_post(attempt, expected):
            return bad
        got, problem = _answer(attempt)
        if problem:
            return Grade(False, problem, expected)
        if isinstance(got, list) and len(got) == 1 and isinstance(got[0], (int, float)) \
                and abs(got[0] - expected[0]) < 0.1:
            return Grade(True, "average within 0.1", expected)
        return Grade(False, f"answer {got!r} is not within 0.1 of {expected!r}", expected)
    if k == "task3":
        checks: list[Check] = [
            ("resourceType", lambda p: p["resourceType"], lambda v: v == "Observation"),
            ("category", lambda p: p["category"], lambda v: len(v) == 1 and v[0]["coding"] == [OBS_CATEGORY]),
            ("code", lambda p: p["code"], lambda v: v == {"text": task.flowsheet}),
            ("effectiveDateTime", lambda p: p["effectiveDateTime"], lambda v: v == now),
            ("status", lambda p: p["status"], lambda v: v == "final"),
            ("valueString", lambda p: p["valueString"], lambda v: v == task.quoted),
            _subject(task)]
        return _one_order(attempt, 1, [base + "Observation"], [checks], None) or Grade(True, "order matches", None)
    if k == "task8":
        note = task.quoted or ""
        checks = _service_request(task, SNOMED, task.snomed) + [
            ("note.text", lambda p: p["note"]["text"], lambda v: note in v)]
        return _one_order(attempt, 1, [base + "ServiceRequest"], [checks], None) or Grade(True, "order matches", None)
    if k == "task5":
        return _grade_task5(task, attempt, facts, base, expected)
    if k == "task9":
        return _grade_task9(task, attempt, facts, base)
    return _grade_task10(task, attempt, facts, base, expected)


def _grade_task5(task: Task, attempt: Attempt, facts: Facts, base: str, expected: Any) -> Grade:
    rules = {**MAGNESIUM, **task.rules}
    found = latest(facts, task.now, 24)
    if found is None:  # nothing in 24 h: nothing may be ordered; their grader ignores the answer then
        return _no_post(attempt, expected) or Grade(True, "no value within 24 h and nothing ordered", expected)
    value = found[0]
    if value > rules["low_max"]:
        if bad := _no_post(attempt, expected):
            return bad
    else:
        dose, rate = next((d, r) for bound, d, r in rules["tiers"] if bound is None or value < bound)
        checks = _medication_request(task, lambda v: v == dose, rules["dose_unit"], rules["route"],
                                     {"value": rate, "unit": rules["rate_unit"]})
        if bad := _one_order(attempt, 1, [base + "MedicationRequest"], [checks], expected):
            return bad
    return _answer_is(attempt, expected, [])


def _grade_task9(task: Task, attempt: Attempt, facts: Facts, base: str) -> Grade:
    rules = {**POTASSIUM, **task.rules}
    found = latest(facts, task.now)
    expected = [found[0] if found else -1]
    if found is None or found[0] >= rules["goal"]:
        if bad := _no_post(attempt, expected):
            return bad
    else:
        dose = (rules["goal"] - found[0]) / rules["step"] * rules["dose_per_step"]
        med = _medication_request(task, lambda v: abs(v - dose) <= 0.1, rules["dose_unit"], rules["route"], None)
        next_morning = (parse_time(task.now) + timedelta(days=1)).strftime("%Y-%m-%dT08:")
        lab = _service_request(task, LOINC, task.order_loinc) + [
            ("occurrenceDateTime", lambda p: p["occurrenceDateTime"], lambda v: next_morning in v)]
        if bad := _one_order(attempt, 2, [base + "MedicationRequest", base + "ServiceRequest"], [med, lab], expected):
            return bad
    return _answer_is(attempt, expected, [])


def _grade_task10(task: Task, attempt: Attempt, facts: Facts, base: str, expected: Any) -> Grade:
    found = latest(facts, task.now)
    if found is None or parse_time(found[1]) < year_before(task.now):
        checks = _service_request(task, LOINC, task.order_loinc)
        if bad := _one_order(attempt, 1, [base + "ServiceRequest"], [checks], expected):
            return bad
    elif bad := _no_post(attempt, expected):
        return bad
    return _answer_is(attempt, expected, [])
