"""Our agent on MedAgentBench tasks, its output mapped onto their answer forms for the same grader.

The agent (``run_question``, our tools, ``draft_order`` for orders) gets the task's instruction and
context as its question and the task's reference time as ``now``. Afterwards:
  * its answer text becomes their FINISH list: the patient id (task1), an integer (task2), the
    first number that is not part of a date or a record id (value tasks; -1 when it says none was
    found), or [] for the order tasks when it gives no number (their grader accepts []). Tool tables
    round values for reading, so a number that equals a stored value of the task's code at the
    precision the agent wrote is replaced by the stored value, and a date (task10) by the stored
    effectiveDateTime of that value: a mapping of display format, not of content.
  * each draft_order call that succeeded (from the trace) is drafted again with the same arguments
    (drafting is pure) and turned into their POST payload: the resource type, codes, patient,
    dose, rate, route, priority, note and occurrence come from the agent's draft; what their
    payloads fix for every order (status active, intent order, authoredOn = now, the vital-signs
    category) is filled in. A draft counts as a POST, so a query task with a draft fails.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agent.run import RunResult, run_question
from agent.trace.records import ToolCallRecord
from agent.trace.writer import load_trace
from tools.ehr import EhrSession
from tools.fhir.backend import FhirBackend

from .facts import observations
from .grade import OBS_CATEGORY, Attempt
from .tasks import Task

NDC_SYSTEM = "http://hl7.org/fhir/sid/ndc"
_NDC = re.compile(r"^\d{4,5}-\d{3,4}-\d{1,2}$")
_DATE = re.compile(r"\d{4}-\d\d-\d\d(?:[T ][\d:.]+(?:Z|[+-]\d\d:?\d\d)?)?")
_REF = re.compile(r"\b[A-Z][A-Za-z]+/[\w.-]+")
_CODE = re.compile(r"(?<![\w.])\d{1,7}-\d(?![\w-])")      # a LOINC code such as 4548-4 is not a value
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w])")
_NONE = re.compile(r"\b(no|none|not (?:available|found|recorded)|unavailable)\b", re.I)


_SPAN = re.compile(r"(?<![\w.])\d+\s*(?:hours?|hrs?|h|days?|minutes?|mins?)\b", re.I)


def numbers(text: str, spans: bool = False) -> list[str]:
    """Numbers in the answer, leaving out dates, times, record ids, codes and (unless ``spans``) time
    spans such as "24 hours", which value answers repeat from the question."""
    text = _CODE.sub(" ", _UUID.sub(" ", _REF.sub(" ", _DATE.sub(" ", text))))
    return _NUMBER.findall(text if spans else _SPAN.sub(" ", text))


def snap(number: str, stored: list[tuple[str, float]]) -> tuple[float, str | None]:
    """The stored value this number shows at its own precision (newest first), else the number."""
    decimals = len(number.split(".")[1]) if "." in number else 0
    value = float(number)
    for when, v in sorted(stored, reverse=True):
        if round(v, decimals) == round(value, decimals):
            return v, when
    return (int(value) if value.is_integer() and "." not in number else value), None


def finish_list(task: Task, answer: str, cited: list[str], stored: list[tuple[str, float]]) -> list[Any]:
    k = task.kind
    if k == "task1":
        if re.search(r"not found|no patient|does not exist", answer, re.I):
            return ["Patient not found"]
        ids = _UUID.findall(answer) or [c.split("/", 1)[1] for c in cited if c.startswith("Patient/")]
        return [ids[0]] if ids else []
    nums = numbers(answer, spans=k == "task2")
    if k == "task2":
        return [int(float(nums[0]))] if nums else []
    if k in ("task3", "task8"):
        return []
    if not nums:
        return [-1] if (_NONE.search(answer) and k not in ("task5", "task9")) else []
    value, when = snap(nums[0], stored)
    if k == "task10":
        if when is None:
            dates = _DATE.findall(answer)
            when = next((w for w, v in stored if dates and w.startswith(dates[0][:10]) and v == value), None)
        return [value, when] if when else [value]
    return [value]


def _dosage(text: str) -> dict[str, Any]:
    """Dose, rate and route out of the agent's dosage text ('2 g IV over 2 hours')."""
    out: dict[str, Any] = {}
    dose = re.search(r"(\d+(?:\.\d+)?)\s*(g|mEq|mg|mmol)\b", text, re.I)
    if dose:
        unit = {"meq": "mEq"}.get(dose.group(2).lower(), dose.group(2))
        out["doseAndRate"] = [{"doseQuantity": {"value": _num(dose.group(1)), "unit": unit}}]
        rate = re.search(r"over\s+(\d+(?:\.\d+)?)\s*(?:h|hr|hrs|hour|hours)\b", text, re.I)
        if rate:
            out["doseAndRate"][0]["rateQuantity"] = {"value": _num(rate.group(1)), "unit": "h"}
    route = re.search(r"\b(IV|intravenous(?:ly)?|oral(?:ly)?|PO|by mouth)\b", text, re.I)
    if route:
        out["route"] = "IV" if route.group(1).lower().startswith(("iv", "intra")) else "oral"
    return out


def _num(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() else value


def to_payload(task: Task, draft: dict[str, Any]) -> dict[str, Any]:
    """Their POST payload for one of our drafts (see the module docstring for what is filled in)."""
    kind, subject = draft["resourceType"], draft.get("subject")
    if kind == "Observation":
        parts = [c.get("valueQuantity", {}).get("value") for c in draft.get("component", [])]
        value = "/".join(str(_num(str(p))) for p in parts) + " mmHg" if len(parts) == 2 else \
            str(draft.get("valueQuantity", {}).get("value"))
        return {"resourceType": "Observation", "category": [{"coding": [OBS_CATEGORY]}],
                "code": {"text": task.flowsheet}, "effectiveDateTime": task.now, "status": "final",
                "valueString": value, "subject": subject}
    notes = [n.get("text", "") for n in draft.get("note", []) if isinstance(n, dict)]
    payload: dict[str, Any] = {"resourceType": kind, "authoredOn": task.now, "status": "active", "intent": "order",
                               "subject": subject}
    if kind == "MedicationRequest":
        concept = json.loads(json.dumps(draft.get("medicationCodeableConcept", {})))
        for coding in concept.get("coding", []):
            if _NDC.match(str(coding.get("code", ""))) and not str(coding.get("system", "")).endswith("ndc"):
                coding["system"] = NDC_SYSTEM
        payload["medicationCodeableConcept"] = concept
        text = " ".join([d.get("text", "") for d in draft.get("dosageInstruction", [])] + notes)
        payload["dosageInstruction"] = [_dosage(text)]
    else:
        payload["code"] = draft.get("code", {})
        if draft.get("priority"):
            payload["priority"] = draft["priority"]
        if notes:
            payload["note"] = {"text": " ".join(notes)}
            when = _DATE.search(" ".join(notes))
            if when and "T" in when.group(0):
                payload["occurrenceDateTime"] = when.group(0)
    return payload


def drafted_payloads(task: Task, backend: FhirBackend, patient_id: str | None, trace_path) -> list[dict[str, Any]]:
    """The agent's successful draft_order calls, drafted again and turned into their payloads."""
    if not patient_id:
        return []
    session = EhrSession(backend, patient_id=patient_id)
    out = []
    for record in load_trace(trace_path):
        if isinstance(record, ToolCallRecord) and record.name == "draft_order" and not record.error:
            result = session.draft_order(**record.args)
            if not result.error and result.resources:
                out.append(to_payload(task, result.resources[0]))
    return out


def run_agent_task(task: Task, *, backend: FhirBackend, model, model_label: str, strategy: str, trace_path,
                   api_base: str, max_steps: int = 8) -> tuple[RunResult, Attempt, dict[str, Any]]:
    """Run our agent on one task; returns its result, the attempt in their terms and mapping notes."""
    patient_id = None if task.kind == "task1" else task.eval_mrn
    question = f"{task.instruction.strip()}\n{task.context.strip()}".strip()
    result = run_question(question, backend=backend, patient_id=patient_id, model=model, model_label=model_label,
                          strategy=strategy, trace_path=trace_path, now=task.now, max_steps=max_steps)
    stored = observations(backend, patient_id, task.code) if (patient_id and task.code) else []
    answer = finish_list(task, result.answer, result.cited_ids, stored) if result.status == "completed" else None
    payloads = drafted_payloads(task, backend, patient_id, trace_path)
    base = api_base.rstrip("/") + "/"
    attempt = Attempt(result=json.dumps(answer) if answer is not None else None, posted=bool(payloads),
                      posts=[(base + p["resourceType"], p) for p in payloads])
    return result, attempt, {"finish": answer, "posts": payloads}
