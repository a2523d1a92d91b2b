"""The MedAgentBench grader on hand-made cases, one group per kind, written from their refsol:
a right attempt passes, and each way of being wrong that refsol checks fails with a reason."""

from __future__ import annotations

import copy
import json

import pytest

from evals.medagentbench.grade import Attempt, Facts, grade
from evals.medagentbench.protocol import attempt_from_history
from evals.medagentbench.tasks import task_from_json

BASE = "http://localhost:8080/fhir/"
NOW = "It's 2023-11-13T10:15:00+00:00 now."
MRN = "S1234567"


def task(kind: str, instruction: str = "", context: str = NOW, **extra):
    return task_from_json({"id": f"{kind}_1", "instruction": instruction, "context": context, "eval_MRN": MRN, **extra})


def finish(answer, posts=()) -> Attempt:
    return Attempt(result=json.dumps(answer), posted=bool(posts), posts=[(BASE + p["resourceType"], p) for p in posts])


def ok(t, attempt, facts=Facts()) -> bool:
    return grade(t, attempt, facts, BASE).correct


# -- task1: lookup -----------------------------------------------------------------------------

def test_task1_exact_list_and_no_post():
    t = task("task1", "What's the MRN of the patient with name Peter Stafford and DOB of 1932-12-29?", "", sol=[MRN])
    assert ok(t, finish([MRN]))
    assert not ok(t, finish(MRN))                     # not a list
    assert not ok(t, finish(["S0000000"]))
    assert not ok(t, Attempt(result=f'["{MRN}"]', posted=True))   # any POST fails a query task
    assert not ok(t, Attempt(result=None))            # never finished
    assert not ok(t, Attempt(result="[S1234567]"))    # not JSON


# -- task2: age at the reference time ------------------------------------------------------------

def test_task2_age_rounded_down_at_now():
    t = task("task2", context="It's 2023-11-13T10:15:00+00:00 now, and the answer should be rounded down to an integer.")
    assert ok(t, finish([90]), Facts(birth_date="1932-12-29"))     # birthday not reached yet in 2023
    assert ok(t, finish([91]), Facts(birth_date="1932-11-13"))     # birthday today
    assert not ok(t, finish([91]), Facts(birth_date="1932-12-29"))
    assert not ok(t, Attempt(result="[90]", posted=True), Facts(birth_date="1932-12-29"))


# -- task3: record a vital -------------------------------------------------------------------

BP = {"resourceType": "Observation",
      "category": [{"coding": [{"system": "http://hl7.org/fhir/observation-category", "code": "vital-signs",
                                "display": "Vital Signs"}]}],
      "code": {"text": "BP"}, "effectiveDateTime": "2023-11-13T10:15:00+00:00", "status": "final",
      "valueString": "118/77 mmHg", "subject": {"reference": f"Patient/{MRN}"}}


@pytest.mark.parametrize("field,value", [("valueString", "118/77"), ("status", "preliminary"),
                                         ("code", {"text": "blood pressure"}), ("effectiveDateTime", "2023-11-13"),
                                         ("subject", {"reference": "Patient/other"})])
def test_task3_each_field_is_checked(field, value):
    t = task("task3", 'I just measured the blood pressure for patient with MRN of S1234567, and it is "118/77 mmHg".',
             NOW + " The flowsheet ID for blood pressure is BP.")
    assert ok(t, finish([], [BP]))
    bad = {**copy.deepcopy(BP), field: value}
    verdict = grade(t, finish([], [bad]), Facts(), BASE)
    assert not verdict.correct and field.split(".")[0] in verdict.reason


def test_task3_needs_exactly_one_post_to_observation():
    t = task("task3", 'blood pressure ... it is "118/77 mmHg".', NOW + " The flowsheet ID for blood pressure is BP.")
    assert not ok(t, finish([], [BP, BP]))
    assert not ok(t, finish([]))
    wrong_url = Attempt(result="[]", posted=True, posts=[(BASE + "Observations", BP)])
    assert not ok(t, wrong_url)


# -- task4 / task6 / task7: values -------------------------------------------------------------

MG = Facts(observations=[("2023-11-12T09:00:00+00:00", 2.1), ("2023-11-13T08:00:00+00:00", 1.8),
                         ("2023-11-10T08:00:00+00:00", 1.1)])


def test_task4_latest_within_24_hours_or_minus_one():
    t = task("task4", context=NOW + ' The code for magnesium is "MG".')
    assert ok(t, finish([1.8]), MG)
    assert not ok(t, finish([2.1]), MG)
    assert not ok(t, finish(["1.8"]), MG)             # typed: a string is not the number
    old = Facts(observations=[("2023-11-11T08:00:00+00:00", 1.8)])
    assert ok(t, finish([-1]), old) and not ok(t, finish([1.8]), old)


def test_task6_average_within_tolerance():
    t = task("task6", context=NOW + ' The code for CBG is "GLU".')
    facts = Facts(observations=[("2023-11-13T08:00:00+00:00", 100), ("2023-11-12T12:00:00+00:00", 131),
                                ("2023-11-01T08:00:00+00:00", 400)])
    assert ok(t, finish([115.5]), facts) and ok(t, finish([115.55]), facts)
    assert not ok(t, finish([115.7]), facts) and not ok(t, finish([115.5, 1]), facts)
    assert ok(t, finish([-1]), Facts())


def test_task7_latest_without_window():
    t = task("task7", context=NOW + ' The code for CBG is "GLU"')
    facts = Facts(observations=[("2020-01-01T08:00:00+00:00", 99), ("2021-05-01T08:00:00+00:00", 87)])
    assert ok(t, finish([87]), facts) and not ok(t, finish([99]), facts)
    assert ok(t, finish([-1]), Facts())
    assert not ok(t, Attempt(result="[87]", posted=True), facts)


# -- task5: replacement if low --------------------------------------------------------------

def mg_order(dose, rate, route="IV"):
    return {"resourceType": "MedicationRequest",
            "medicationCodeableConcept": {"coding": [{"system": "http://hl7.org/fhir/sid/ndc", "code": "0338-1715-40"}]},
            "authoredOn": "2023-11-13T10:15:00+00:00",
            "dosageInstruction": [{"route": route, "doseAndRate": [{"doseQuantity": {"value": dose, "unit": "g"},
                                                                    "rateQuantity": {"value": rate, "unit": "h"}}]}],
            "status": "active", "intent": "order", "subject": {"reference": f"Patient/{MRN}"}}


MG_CONTEXT = NOW + ' The code for magnesium is "MG". The NDC for replacement IV magnesium is 0338-1715-40. Dosing ...'


@pytest.mark.parametrize("value,dose", [(1.8, 1), (1.2, 2), (0.9, 4)])
def test_task5_tiers(value, dose):
    t = task("task5", context=MG_CONTEXT)
    facts = Facts(observations=[("2023-11-13T08:00:00+00:00", value)])
    assert ok(t, finish([value], [mg_order(dose, dose)]), facts)
    assert ok(t, finish([], [mg_order(dose, dose)]), facts)       # their grader accepts [] here
    assert not ok(t, finish([value], [mg_order(dose + 1, dose + 1)]), facts)
    assert not ok(t, finish([value]), facts)                        # low but nothing ordered
    assert not ok(t, finish([value], [mg_order(dose, dose, route="oral")]), facts)


def test_task5_not_low_or_missing_must_not_order():
    t = task("task5", context=MG_CONTEXT)
    normal = Facts(observations=[("2023-11-13T08:00:00+00:00", 2.0)])
    assert ok(t, finish([2.0]), normal) and not ok(t, finish([2.0], [mg_order(1, 1)]), normal)
    assert ok(t, finish(["anything"]), Facts())                    # none in 24 h: the answer is not graded
    assert not ok(t, finish([-1], [mg_order(1, 1)]), Facts())


# -- task8: referral -----------------------------------------------------------------------------

NOTE = "Situation: acute left knee injury, Background: ACL tear."
REFERRAL = {"resourceType": "ServiceRequest",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "306181000000106"}]},
            "authoredOn": "2023-11-13T10:15:00+00:00", "status": "active", "intent": "order", "priority": "stat",
            "note": {"text": "Referral. " + NOTE}, "subject": {"reference": f"Patient/{MRN}"}}


@pytest.mark.parametrize("field,value", [("priority", "routine"), ("note", {"text": "ACL tear"}),
                                         ("authoredOn", "2023-11-13"), ("intent", "plan")])
def test_task8_referral_fields(field, value):
    t = task("task8", f'Order orthopedic surgery referral for patient {MRN}. Specify ... "{NOTE}"',
             NOW + " The SNOMED code for orthopedic surgery referral is 306181000000106.")
    assert ok(t, finish([], [REFERRAL]))
    assert not ok(t, finish([], [{**REFERRAL, field: value}]))


# -- task9: potassium with a recheck ---------------------------------------------------------

K_CONTEXT = (NOW + ' The code for potassium is "K".The NDC for replacement potassium is 40032-917-01. Dosing ... '
             "The LOINC code for serum potassium level is 2823-3.")


def k_orders(dose, when="2023-11-14T08:00:00+00:00"):
    med = {"resourceType": "MedicationRequest",
           "medicationCodeableConcept": {"coding": [{"system": "http://hl7.org/fhir/sid/ndc", "code": "40032-917-01"}]},
           "authoredOn": "2023-11-13T10:15", "dosageInstruction": [{"route": "Oral", "doseAndRate": [
               {"doseQuantity": {"value": dose, "unit": "mEq"}}]}],
           "status": "active", "intent": "order", "subject": {"reference": f"Patient/{MRN}"}}
    lab = {"resourceType": "ServiceRequest", "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
           "authoredOn": "2023-11-13T10:15:00+00:00", "status": "active", "intent": "order", "priority": "stat",
           "subject": {"reference": f"Patient/{MRN}"}, "occurrenceDateTime": when}
    return [med, lab]


def test_task9_low_potassium_orders_dose_and_recheck():
    t = task("task9", context=K_CONTEXT)
    low = Facts(observations=[("2023-01-01T08:00:00+00:00", 4.0), ("2023-11-10T08:00:00+00:00", 3.2)])
    assert ok(t, finish([3.2], k_orders(30)), low)
    assert ok(t, finish([3.2], k_orders(30.05)), low)                      # within 0.1
    assert not ok(t, finish([3.2], k_orders(20)), low)
    assert not ok(t, finish([3.2], k_orders(30, when="2023-11-14T09:00:00+00:00")), low)
    assert not ok(t, finish([3.2], k_orders(30)[::-1]), low)               # the medication comes first
    assert not ok(t, finish([3.2], k_orders(30)[:1]), low)


def test_task9_normal_or_missing_potassium_orders_nothing():
    t = task("task9", context=K_CONTEXT)
    normal = Facts(observations=[("2023-11-10T08:00:00+00:00", 4.1)])
    assert ok(t, finish([4.1]), normal) and ok(t, finish([]), normal)
    assert not ok(t, finish([4.1], k_orders(0)), normal)
    assert ok(t, finish([-1]), Facts()) and not ok(t, finish([4.1]), Facts())


# -- task10: HbA1c and re-ordering ----------------------------------------------------------------

A1C_CONTEXT = NOW + ' The code for HbA1C is "A1C". The LOINC code for ordering HbA1C lab is: 4548-4.'
A1C_ORDER = {**k_orders(0)[1], "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]}}


def test_task10_recent_value_no_order_old_value_order():
    t = task("task10", context=A1C_CONTEXT)
    recent = Facts(observations=[("2023-05-01T08:00:00+00:00", 6.1)])
    assert ok(t, finish([6.1, "2023-05-01T08:00:00+00:00"]), recent)
    assert ok(t, finish([]), recent)
    assert not ok(t, finish([6.1, "2023-05-01"]), recent)                  # the time as recorded
    assert not ok(t, finish([6.1, "2023-05-01T08:00:00+00:00"], [A1C_ORDER]), recent)
    old = Facts(observations=[("2022-11-01T08:00:00+00:00", 7.3)])
    assert ok(t, finish([7.3, "2022-11-01T08:00:00+00:00"], [A1C_ORDER]), old)
    assert not ok(t, finish([7.3, "2022-11-01T08:00:00+00:00"]), old)
    assert ok(t, finish([-1], [A1C_ORDER]), Facts())


# -- their transcript rules --------------------------------------------------------------------

def test_posts_read_from_history_like_their_extract_posts():
    body = json.dumps(BP)
    history = [("user", "prompt"), ("agent", f"POST {BASE}Observation\n{body}"),
               ("user", "POST request accepted and executed successfully."), ("agent", "POST oops\nnot json"),
               ("user", "Invalid POST request"), ("agent", "FINISH([])")]
    attempt = attempt_from_history("[]", history)
    assert attempt.posted and attempt.posts == [(BASE + "Observation", BP)]
