"""The patient and measurement agents.

- ``CaseMeasurement`` (the default measurement agent): deterministic. It looks the requested
  test up by name among the case's examination findings and test results (any level of the
  nesting: "Neurological examination", "Chest CT", "Acetylcholine receptor antibodies"), with
  abbreviations expanded and fuzzy matching; anything it cannot find is "NORMAL READINGS", as
  AgentClinic's measurement prompt tells its LLM to say.
- ``LlmMeasurement`` / ``LlmPatient``: any chat model, with AgentClinic's prompts and the
  dialogue so far.
- ``CasePatient``: a deterministic patient for quick runs and tests: the sentences of the
  patient's information that share the most words with the question.

Each answers ``respond(text, dialogue) -> RoleReply``; a failing model is a reply with an
error, never an exception through the consultation.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Protocol

from langchain_core.messages import HumanMessage, SystemMessage
from rapidfuzz import fuzz

from . import prompts
from .cases import as_text, exam_info, patient_info

NORMAL = "RESULTS: NORMAL READINGS (no such result in the record: normal or not done)"
MAX_REPLY = 600
ABBREVIATIONS = {
    "cbc": "complete blood count", "ecg": "electrocardiogram", "ekg": "electrocardiogram",
    "cxr": "chest x ray", "xray": "x ray", "bp": "blood pressure", "hr": "heart rate", "rr": "respiratory rate",
    "lft": "liver function tests", "lfts": "liver function tests", "abg": "arterial blood gas",
    "ua": "urinalysis", "bmp": "basic metabolic panel", "cmp": "comprehensive metabolic panel",
    "tsh": "thyroid stimulating hormone", "emg": "electromyography", "eeg": "electroencephalogram",
    "echo": "echocardiogram", "us": "ultrasound", "vitals": "vital signs", "temp": "temperature",
    "csf": "cerebrospinal fluid", "lp": "lumbar puncture", "mri": "mri", "ct": "ct", "esr": "erythrocyte sedimentation rate",
    "crp": "c reactive protein", "wbc": "white blood cell count", "hb": "hemoglobin", "hgb": "hemoglobin",
    "pft": "pulmonary function tests", "pfts": "pulmonary function tests", "ana": "antinuclear antibodies",
}


@dataclass
class RoleReply:
    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0
    raw_output: str | None = None      # the model's text before clean-up (None: no model involved)
    error: str | None = None
    matched: list[str] | None = None   # which findings a lookup returned


class Role(Protocol):
    label: str

    def respond(self, text: str, dialogue: list[tuple[str, str]]) -> RoleReply: ...


def normalise(text: str) -> str:
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    words = re.sub(r"[^a-z0-9]+", " ", text.lower().replace("x-ray", "x ray")).split()
    words = [ABBREVIATIONS.get(w, w) for w in words if w not in ("test", "tests", "result", "results", "level", "levels",
                                                                  "please", "the", "a", "of", "for", "request")]
    return " ".join(w[:-1] if len(w) > 4 and w.endswith("s") and not w.endswith("ss") else w for w in words)


def leaves(value: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    if isinstance(value, dict):
        return [leaf for key, sub in value.items() for leaf in leaves(sub, (*path, str(key)))]
    if isinstance(value, list):
        return [(path, "; ".join(map(str, value)))]
    return [(path, str(value))]


class CaseMeasurement:
    label = "deterministic (case lookup, fuzzy name match)"
    THRESHOLD = 82

    def __init__(self, osce: dict[str, Any]):
        self.findings = leaves(exam_info(osce))

    def lookup(self, test_name: str) -> list[tuple[tuple[str, ...], str]]:
        """The findings under the best-matching node: a whole panel when its name matches."""
        query = normalise(test_name)
        if not query:
            return []
        nodes = {path[:depth] for path, _ in self.findings for depth in range(1, len(path) + 1)}
        scored = []
        for node in nodes:
            name = normalise(node[-1])
            if not name or name in ("finding", "result", "other"):
                continue
            # Every word asked for is in the node's path ("chest ct" -> Imaging > Chest_CT): a hit; else
            # whole-name similarity (a more specific request, "complete blood count", is not "Blood_Tests").
            covered = set(query.split()) <= set(normalise(" ".join(node)).split())
            score = 100 if covered else fuzz.token_sort_ratio(query, name)
            if score >= self.THRESHOLD:
                scored.append((score, fuzz.ratio(query, name), -len(node), node))
        if not scored:
            return []
        best = max(scored)[3]
        return [(path, value) for path, value in self.findings if path[: len(best)] == best]

    def respond(self, text: str, dialogue: list[tuple[str, str]]) -> RoleReply:
        found = self.lookup(text)
        if not found:
            return RoleReply(NORMAL, matched=[])
        lines = [f"{' > '.join(p.replace('_', ' ') for p in path)}: {value}" for path, value in found]
        return RoleReply("RESULTS: " + "; ".join(lines), matched=[" > ".join(p) for p, _ in found])


class CasePatient:
    """Answers with the patient information sentences that best share the question's words."""
    label = "deterministic (case sentences by word overlap)"

    def __init__(self, osce: dict[str, Any]):
        info = patient_info(osce)
        text = " ".join(v for _, v in leaves(info) if v and "not provided" not in v.lower())
        self.sentences = [s.strip() for s in re.split(r"(?<=[.!?;])\s+", text) if s.strip()]
        self.opening = str(info.get("History") or (self.sentences[0] if self.sentences else ""))

    def respond(self, text: str, dialogue: list[tuple[str, str]]) -> RoleReply:
        asked = set(normalise(text).split()) - {"you", "your", "do", "have", "any", "what", "how", "when", "is", "are"}
        ranked = sorted(self.sentences, key=lambda s: -len(asked & set(normalise(s).split())))
        best = [s for s in ranked[:2] if asked & set(normalise(s).split())]
        return RoleReply("Patient: " + (" ".join(best) if best else self.opening or "I don't know."))


class _LlmRole:
    # A reply is 1-3 sentences: a bound keeps a small model from running on (and a slow one from taking minutes).
    MAX_TOKENS = 160
    STOP = ["\nDoctor:", "\nDr. Agent:", "\n\n\n"]

    def __init__(self, model: Any, label: str, system: str, lead: str):
        self.model, self.label, self.system, self.lead = model, label, system, lead

    def _ask(self, prompt: str, prefix: str) -> RoleReply:
        start = time.perf_counter()
        try:
            message = self.model.invoke([SystemMessage(content=self.system), HumanMessage(content=prompt)],
                                        stop=self.STOP, max_tokens=self.MAX_TOKENS)
        except Exception as exc:
            return RoleReply(f"{prefix}(no answer)", latency_s=time.perf_counter() - start,
                             error=f"{type(exc).__name__}: {exc}")
        raw = message.content if isinstance(message.content, str) else str(message.content)
        usage = getattr(message, "usage_metadata", None) or {}
        return RoleReply(clean_reply(raw, prefix), int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0)),
                         time.perf_counter() - start, raw_output=raw)


def history_text(dialogue: list[tuple[str, str]]) -> str:
    return "\n".join(f"{who}: {text}" for who, text in dialogue) or "(none yet)"


class LlmPatient(_LlmRole):
    def __init__(self, model: Any, label: str, osce: dict[str, Any]):
        super().__init__(model, label, prompts.PATIENT.substitute(patient_info=as_text(patient_info(osce))), "Patient")

    def respond(self, text: str, dialogue: list[tuple[str, str]]) -> RoleReply:
        prompt = (f"Here is a history of your dialogue:\n{history_text(dialogue)}\n\nHere was the doctor response: "
                  f"{text}\nNow please continue your dialogue\nPatient:")
        return self._ask(prompt, "Patient: ")


class LlmMeasurement(_LlmRole):
    def __init__(self, model: Any, label: str, osce: dict[str, Any]):
        super().__init__(model, label, prompts.MEASUREMENT.substitute(exam_info=as_text(exam_info(osce))), "RESULTS")

    def respond(self, text: str, dialogue: list[tuple[str, str]]) -> RoleReply:
        prompt = (f"Here is a history of the dialogue:\n{history_text(dialogue)}\n\nHere was the doctor measurement "
                  f"request: REQUEST TEST: {text}")
        return self._ask(prompt, "")


def clean_reply(raw: str, prefix: str) -> str:
    """A role's reply as the doctor sees it: its own turn only (a small model runs on into the
    doctor's), at most MAX_REPLY characters."""
    text = raw.strip()
    text = re.split(r"\n\s*(?:Doctor|Dr\.? Agent|Patient|Measurement)\s*:|<end_of_turn>|<start_of_turn>", text)[0]
    text = re.sub(r"^\s*(Patient|RESULTS)\s*:\s*", "", text, flags=re.I).strip()
    if len(text) > MAX_REPLY:
        text = text[:MAX_REPLY].rsplit(" ", 1)[0] + " …"
    if prefix.startswith("Patient"):
        return f"Patient: {text or '(no answer)'}"
    return f"RESULTS: {text or 'NORMAL READINGS'}"
