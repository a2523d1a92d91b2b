"""AgentClinic-MedQA as a Benchmark for the run harness (evals/bench/types.py).

The doctor is the run's model (``ctx.model``); the patient, measurement agent and moderator are
chosen when the benchmark is built and recorded as roles in run.json and in every trace header.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.models import uses_examples
from agent.trace.records import ModelCallRecord, RunEnd, RunHeader
from agent.trace.writer import TraceWriter
from evals.bench.runner import trace_file
from evals.bench.types import BenchCase, CaseContext, CaseResult

from . import prompts
from .cases import DEFAULT_CASES, diagnosis, file_sha256, load_cases, objective
from .doctor import MAX_TURNS, consult
from .judge import moderate
from .roles import CaseMeasurement, CasePatient, LlmMeasurement, LlmPatient

PUBLISHED = [
    {"model": "MedGemma 27B", "score": 56.2, "source": "MedGemma technical report, arXiv 2507.05201",
     "note": "AgentClinic-MedQA; GPT-4o as patient and measurement agents"},
    {"model": "Gemma 3 27B", "score": 50.7, "source": "MedGemma technical report, arXiv 2507.05201",
     "note": "AgentClinic-MedQA; GPT-4o as patient and measurement agents"},
]
DETERMINISTIC = "deterministic"


class AgentClinicBenchmark:
    name = "agentclinic"

    def __init__(self, cases_file: Path | None = None, *, patient_model: Any = None, patient_label: str = DETERMINISTIC,
                 measurement_model: Any = None, measurement_label: str = DETERMINISTIC, judge_model: Any = None,
                 judge_label: str = "none", max_turns: int = MAX_TURNS, constrained: bool = True,
                 examples: str = "auto"):
        """``*_model`` None means the deterministic role (patient: case sentences; measurement:
        case lookup); ``judge_model`` None means the string match alone decides."""
        self.cases_file = Path(cases_file or DEFAULT_CASES)
        self.patient_model, self.patient_label = patient_model, patient_label
        self.measurement_model, self.measurement_label = measurement_model, measurement_label
        self.judge_model, self.judge_label = judge_model, judge_label
        self.max_turns, self.constrained, self.examples = max_turns, constrained, examples
        self._cases: list[BenchCase] | None = None

    def cases(self) -> list[BenchCase]:
        if self._cases is None:
            self._cases = load_cases(self.cases_file)
        return self._cases

    def roles(self) -> dict[str, str]:
        return {"patient": self.patient_label if self.patient_model is not None else CasePatient.label,
                "measurement": self.measurement_label if self.measurement_model is not None else CaseMeasurement.label,
                "moderator": (f"{self.judge_label} (LLM judge) + normalised string match" if self.judge_model is not None
                              else "normalised string match only")}

    def describe(self) -> dict[str, Any]:
        roles = self.roles()
        return {"data": {str(self.cases_file): file_sha256(self.cases_file)}, "roles": roles,
                "prompts": prompts.prompt_hashes(), "max_turns": self.max_turns, "constrained": self.constrained,
                "comparability": ("Published figures: comparable only if the same 107 AgentClinic-MedQA cases are run "
                                  f"with GPT-4o as patient and measurement agents, {MAX_TURNS} doctor turns and an LLM "
                                  f"moderator. Here: patient = {roles['patient']}; measurement = {roles['measurement']}; "
                                  f"moderator = {roles['moderator']}; turns = {self.max_turns}.")}

    def published(self) -> list[dict[str, Any]]:
        return PUBLISHED

    def run_case(self, case: BenchCase, ctx: CaseContext) -> CaseResult:
        osce = case.data
        gold = diagnosis(osce)
        if not gold or not osce.get("Patient_Actor"):
            return CaseResult(id=case.id, category=case.category, correct=None, status="bad_case", gold=gold,
                              error="the case has no diagnosis or no patient information")
        patient = (LlmPatient(self.patient_model, self.patient_label, osce) if self.patient_model is not None
                   else CasePatient(osce))
        measurement = (LlmMeasurement(self.measurement_model, self.measurement_label, osce)
                       if self.measurement_model is not None else CaseMeasurement(osce))
        trace_path = trace_file(ctx.trace_dir, case.id)
        examples = uses_examples(ctx.model, self.examples)
        with TraceWriter(trace_path) as trace:
            trace.emit(RunHeader(run_id="", question=objective(osce), patient_id=None, strategy="agentclinic",
                                 model=ctx.model_label, seed=0, prompts=prompts.prompt_hashes(),
                                 config={"max_turns": self.max_turns, "constrained": self.constrained,
                                         "examples": examples, "case": case.id, "roles": self.roles()}))
            consultation = consult(objective(osce), model=ctx.model, patient=patient, measurement=measurement,
                                   trace=trace, max_turns=self.max_turns, constrained=self.constrained,
                                   examples=examples)
            correct, details, llm = moderate(consultation.diagnosis, gold, self.judge_model)
            if llm is not None:
                trace.emit(ModelCallRecord(run_id="", step=consultation.turns, node="moderator",
                                           prompt_messages=llm.prompt_messages, raw_output=llm.raw,
                                           input_tokens=llm.input_tokens, output_tokens=llm.output_tokens,
                                           latency_s=round(llm.latency_s, 4), error=llm.error))
            trace.emit(RunEnd(run_id="", status=consultation.status, answer=consultation.diagnosis,
                              steps=consultation.turns, model_calls=consultation.model_calls,
                              tool_calls=consultation.tool_calls, input_tokens=consultation.input_tokens,
                              output_tokens=consultation.output_tokens, error=consultation.error))
        details.update(tests=consultation.tests, role_tokens=consultation.role_tokens)
        return CaseResult(id=case.id, category=case.category, correct=correct, status=consultation.status,
                          answer=consultation.diagnosis, gold=gold, steps=consultation.turns,
                          model_calls=consultation.model_calls, tool_calls=consultation.tool_calls,
                          input_tokens=consultation.input_tokens, output_tokens=consultation.output_tokens,
                          trace_path=str(trace_path), details=details, error=consultation.error)
