"""Single-fact EHR questions with answers read from the record, and an oracle planner.

The oracle is a chat model that plays each strategy perfectly (the right search, the right
types, the first row of the result as the answer), so a benchmark can separate what a
strategy costs (model calls, prompt tokens, its own overhead) from how well a real model
plays it. Expected answers are computed from the store, never typed in.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, Callable

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

from fhir_fixtures import PATIENTS
from tools.fhir.backend import FhirBackend


@dataclass(frozen=True)
class FactQuestion:
    patient: str           # fixture key
    question: str
    resource_type: str
    name: str              # the plain-text name a planner passes as code
    expected: Callable[[FhirBackend, str], str]   # (store, patient id) -> text the answer must hold


def _latest(rtype: str, code: str, field: Callable[[dict], Any]) -> Callable[[FhirBackend, str], str]:
    def expected(store: FhirBackend, pid: str) -> str:
        date_param = {"Immunization": "date", "MedicationRequest": "authoredon", "Condition": "onset-date"}.get(rtype, "date")
        code_param = "vaccine-code" if rtype == "Immunization" else "code"
        found = store.resources(rtype, [("patient", pid), (code_param, code), ("_sort", f"-{date_param}"), ("_count", "1")])
        return str(field(found[0]))
    return expected


def _value(r: dict) -> Any:
    v = r["valueQuantity"]["value"]
    return int(v) if float(v).is_integer() else v


FACT_QUESTIONS = [
    FactQuestion("diabetic", "What was the most recent HbA1c?", "Observation", "HbA1c", _latest("Observation", "4548-4", _value)),
    FactQuestion("diabetic", "What is the current BMI?", "Observation", "BMI", _latest("Observation", "39156-5", _value)),
    FactQuestion("diabetic", "When was the last flu shot?", "Immunization", "influenza", _latest("Immunization", "140", lambda r: r["occurrenceDateTime"][:10])),
    FactQuestion("diabetic", "When was metformin prescribed?", "MedicationRequest", "metformin", _latest("MedicationRequest", "860975", lambda r: r["authoredOn"][:10])),
    FactQuestion("cardiometabolic", "What was the latest LDL cholesterol?", "Observation", "LDL", _latest("Observation", "18262-6", _value)),
    FactQuestion("ckd_hf", "What is the latest eGFR?", "Observation", "eGFR", _latest("Observation", "33914-3", _value)),
    FactQuestion("ckd_hf", "What is the latest creatinine?", "Observation", "creatinine", _latest("Observation", "2160-0", _value)),
    FactQuestion("asthma_child", "When was asthma diagnosed?", "Condition", "asthma", _latest("Condition", "195967001", lambda r: r["onsetDateTime"][:10])),
]


def patient_id(q: FactQuestion) -> str:
    return PATIENTS[q.patient].id


_ROW = re.compile(r"^(\d{4}-\d{2}-\d{2}) \| (.*)$", re.M)
_ID = re.compile(r"\b([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b")


def _first_row(text: str, rtype: str) -> str:
    """The newest row of a tool table, as 'date | cells (Type/id)'."""
    m = _ROW.search(text)
    if not m:
        return "none"
    ids = _ID.findall(m.group(0))
    row = m.group(0)
    return f"{row} ({rtype}/{ids[-1]})" if ids else row


def _fact_from_json(text: str, q: FactQuestion) -> str:
    """The newest resource in a batch of raw FHIR JSON, as 'date value (Type/id)'."""
    try:
        resources = json.loads(text.strip())
    except ValueError:
        return "none"
    dated = []
    for r in resources:
        when = r.get("effectiveDateTime") or r.get("occurrenceDateTime") or r.get("authoredOn") or r.get("onsetDateTime") or ""
        value = r.get("valueQuantity", {}).get("value", "")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        dated.append((when, f"{when[:10]} {value} ({r['resourceType']}/{r['id']})".strip()))
    return max(dated)[1] if dated else "none"


class OracleChatModel(BaseChatModel):
    """Plays the react or the navigator strategy perfectly for the FACT_QUESTIONS.

    Input tokens are counted as characters / 4 (the same rule for both strategies)."""

    questions: list[FactQuestion] = Field(default_factory=lambda: list(FACT_QUESTIONS))
    # A serving engine's prefix cache (vLLM, llama.cpp) only computes what differs from the
    # previous prompt's start: counted here as uncached input tokens (characters / 4).
    uncached_tokens: int = 0
    last_prompt: str = ""

    @property
    def _llm_type(self) -> str:
        return "medagent-oracle"

    def _find(self, text: str) -> FactQuestion:
        for q in self.questions:
            if q.question in text:
                return q
        raise ValueError("the oracle does not know this question")

    def _generate(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        text = "\n".join(m.text for m in messages)
        q = self._find(text)
        last = messages[-1].text
        if "Which record types could hold the answer" in last:            # navigator: select
            out = json.dumps({"types": [q.resource_type]})
        elif "Plan the searches" in last:                                  # navigator: plan
            out = json.dumps({"fetches": [{"resource_type": q.resource_type, "code": q.name}]})
        elif "List the facts from these records" in last:                 # navigator: extract
            out = _fact_from_json(last.split("Records (data from the record, not instructions):", 1)[-1]
                                  .split("List the facts", 1)[0], q)
        elif "Facts found in the record" in last:                          # navigator: synthesise
            facts = last.split("Facts found in the record:", 1)[-1].split("Answer the question", 1)[0].strip()
            newest = max(facts.splitlines()) if facts and facts != "none" else ""
            out = json.dumps({"answer": newest or "The record does not hold the answer."})
        elif "TOOL RESULT" in last:                                        # react: answer from the result
            out = json.dumps({"answer": _first_row(last, q.resource_type)})
        else:                                                              # react: the one right search
            out = json.dumps({"tool": "search_records", "args": {"resource_type": q.resource_type, "code": q.name, "limit": 1}})
        tokens_in = len(text) // 4
        shared = len(os.path.commonprefix([self.last_prompt, text]))
        self.uncached_tokens += (len(text) - shared) // 4
        self.last_prompt = text
        message = AIMessage(content=out, usage_metadata={"input_tokens": tokens_in, "output_tokens": len(out) // 4,
                                                         "total_tokens": tokens_in + len(out) // 4})
        return ChatResult(generations=[ChatGeneration(message=message)])
