"""The moderator: is the doctor's diagnosis the case's diagnosis?

Two verdicts, both recorded per case:
- ``string_verdict``: normalised string match (case, punctuation, British spellings, common
  abbreviations and synonyms, filler words such as "disease"/"syndrome" dropped), then token
  overlap: the gold's words all in the answer (a more specific answer), or an F1 of at least
  0.75 (an answer that drops a qualifier such as "acute"). A long differential does not count.
- ``llm_verdict``: AgentClinic's moderator prompt to any chat model, answered Yes/No.
The LLM decides when it gave a readable Yes/No; otherwise the string match does.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage

from . import prompts

F1_THRESHOLD = 0.75
NEGATIONS = {"non", "not", "no", "without"}
JUDGE_MAX_TOKENS = 8
PHRASES = {  # whole-phrase synonyms and abbreviations -> one canonical wording
    "mi": "myocardial infarction", "heart attack": "myocardial infarction", "ami": "myocardial infarction",
    "stemi": "st elevation myocardial infarction", "nstemi": "non st elevation myocardial infarction",
    "copd": "chronic obstructive pulmonary", "dvt": "deep vein thrombosis", "deep venous thrombosis": "deep vein thrombosis",
    "pe": "pulmonary embolism", "sle": "systemic lupus erythematosus", "lupus": "systemic lupus erythematosus",
    "ms": "multiple sclerosis", "als": "amyotrophic lateral sclerosis", "tb": "tuberculosis",
    "uti": "urinary tract infection", "gerd": "gastroesophageal reflux", "ibs": "irritable bowel",
    "ra": "rheumatoid arthritis", "dka": "diabetic ketoacidosis", "chf": "congestive heart failure",
    "hcc": "hepatocellular carcinoma", "ards": "acute respiratory distress", "sah": "subarachnoid hemorrhage",
    "tia": "transient ischemic attack", "mg": "myasthenia gravis", "pcos": "polycystic ovary",
    "gbs": "guillain barre", "pml": "progressive multifocal leukoencephalopathy", "hus": "hemolytic uremic",
    "ttp": "thrombotic thrombocytopenic purpura", "dic": "disseminated intravascular coagulation",
    "itp": "immune thrombocytopenic purpura", "idiopathic thrombocytopenic purpura": "immune thrombocytopenic purpura",
    "cml": "chronic myeloid leukemia", "aml": "acute myeloid leukemia", "cll": "chronic lymphocytic leukemia",
    "all": "acute lymphoblastic leukemia", "nms": "neuroleptic malignant", "hsp": "henoch schonlein purpura",
    "iga vasculitis": "henoch schonlein purpura", "ckd": "chronic kidney", "aki": "acute kidney injury",
    "bph": "benign prostatic hyperplasia", "pid": "pelvic inflammatory", "cf": "cystic fibrosis",
    "hiv": "human immunodeficiency virus infection", "ptsd": "post traumatic stress", "adhd": "attention deficit hyperactivity",
    "ocd": "obsessive compulsive", "gad": "generalized anxiety", "mdd": "major depressive",
    "cancer": "carcinoma", "tumour": "tumor", "grave": "graves", "graves": "graves",
}
SPELLING = [("haem", "hem"), ("oesoph", "esoph"), ("aemia", "emia"), ("oedema", "edema"), ("tumour", "tumor"),
            ("paed", "ped"), ("leukaemia", "leukemia"), ("ischaem", "ischem"), ("coeliac", "celiac"), ("ae", "e")]
FILLER = {"the", "a", "an", "of", "with", "and", "or", "in", "to", "due", "disease", "syndrome", "disorder",
          "condition", "likely", "probable", "possible", "most", "diagnosis", "ready", "s", "type", "patient", "has"}


def normalise(text: str) -> list[str]:
    text = (text or "").lower().replace("'s", "").replace("’s", "")
    text = re.sub(r"^.*?diagnosis ready\s*:", "", text, flags=re.S)
    text = re.sub(r"[^a-z0-9]+", " ", text)
    for british, american in SPELLING:
        text = text.replace(british, american)
    text = f" {text.strip()} "
    for phrase, canonical in sorted(PHRASES.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(f" {phrase} ", f" {canonical} ")
    return [w[:-1] if len(w) > 4 and w.endswith("s") and not w.endswith(("ss", "is", "us")) else w
            for w in text.split() if w not in FILLER]


@dataclass
class Verdict:
    correct: bool
    score: float
    how: str


LEAD_IN = re.compile(r"(?:diagnosis ready\s*:|diagnosis (?:is|of)|consistent with|suggestive of|most likely)\s*:?\s*"
                     r"(?:an?\s+|the\s+)?([^.;\n(]+)", re.I)


def diagnosis_phrase(answer: str) -> str:
    """The diagnosis named in a prose answer: a **bold** phrase, or what follows "diagnosis of",
    "consistent with"...; short answers are taken whole."""
    if bold := re.search(r"\*\*([^*]+)\*\*", answer or ""):
        return bold.group(1)
    if len((answer or "").split()) > 8 and (lead := LEAD_IN.search(answer)):
        return lead.group(1)
    return answer or ""


def string_verdict(answer: str, gold: str) -> Verdict:
    a, g = normalise(diagnosis_phrase(answer)), normalise(gold)
    if not a or not g:
        return Verdict(False, 0.0, "empty")
    if a == g:
        return Verdict(True, 1.0, "exact")
    if NEGATIONS & (set(a) ^ set(g)):   # "Hodgkin" vs "non Hodgkin": a different disease
        return Verdict(False, 0.0, "negation differs")
    common = len(set(a) & set(g))
    precision, recall = common / len(set(a)), common / len(set(g))
    f1 = 2 * precision * recall / (precision + recall) if common else 0.0
    if recall == 1.0 and len(set(a)) <= 2 * len(set(g)) + 2:
        return Verdict(True, f1, "gold words all in the answer")
    return Verdict(f1 >= F1_THRESHOLD, f1, f"token F1 {f1:.2f}")


@dataclass
class LlmVerdict:
    correct: bool | None          # None: no readable Yes/No
    raw: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0
    error: str | None = None
    prompt_messages: list[dict[str, str]] = field(default_factory=list)


def read_yes_no(raw: str) -> bool | None:
    match = re.search(r"\b(yes|no)\b", (raw or "").lower())
    return None if match is None else match.group(1) == "yes"


def llm_verdict(model: Any, answer: str, gold: str) -> LlmVerdict:
    human = prompts.MODERATOR.substitute(correct=gold, diagnosis=answer)
    messages = [SystemMessage(content=prompts.MODERATOR_SYSTEM), HumanMessage(content=human)]
    start = time.perf_counter()
    shown = [{"role": "system", "content": prompts.MODERATOR_SYSTEM}, {"role": "user", "content": human}]
    try:
        message = model.invoke(messages, stop=["\n"], max_tokens=JUDGE_MAX_TOKENS)   # "Yes" or "No"
    except Exception as exc:
        return LlmVerdict(None, error=f"{type(exc).__name__}: {exc}", latency_s=time.perf_counter() - start,
                          prompt_messages=shown)
    raw = message.content if isinstance(message.content, str) else str(message.content)
    usage = getattr(message, "usage_metadata", None) or {}
    return LlmVerdict(read_yes_no(raw), raw, int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0)),
                      time.perf_counter() - start, prompt_messages=shown)


def moderate(answer: str, gold: str, judge_model: Any | None) -> tuple[bool, dict[str, Any], LlmVerdict | None]:
    """(correct, details for the CaseResult, the LLM call for the trace)."""
    if not answer.strip():
        return False, {"decided_by": "no_diagnosis", "string_match": False, "llm_judge": None}, None
    text = string_verdict(answer, gold)
    details: dict[str, Any] = {"string_match": text.correct, "string_score": round(text.score, 3), "string_how": text.how,
                               "llm_judge": None}
    llm = llm_verdict(judge_model, answer, gold) if judge_model is not None else None
    if llm is not None:
        details.update(llm_judge=llm.correct, llm_judge_raw=llm.raw[:200], llm_judge_error=llm.error)
    if llm is not None and llm.correct is not None:
        return llm.correct, {**details, "decided_by": "llm_judge"}, llm
    return text.correct, {**details, "decided_by": "string_match"}, llm
