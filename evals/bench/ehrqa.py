"""EHRQA-style questions (evals/ehrqa) as a Benchmark for the run harness.

Cases come from the generator over the run's backend (golds computed from the records, the
same set for a seed) or from a questions file (``evals.ehrqa.generate`` writes one). Each case
is one ``agent.run.run_question`` (unbound for patient-lookup questions) scored by
``evals.ehrqa.score.is_correct``; a run that did not complete is wrong whatever its text says,
as in ``score_rows``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .runner import trace_file
from .types import BenchCase, CaseContext, CaseResult

PUBLISHED = [
    {"model": "MedGemma 27B text", "score": 86.3, "source": "MedGemma technical report, arXiv 2507.05201",
     "note": "their EHRQA set (not public); whole record in the prompt, no tools"},
    {"model": "MedGemma 27B text + RL", "score": 93.6, "source": "MedGemma technical report, arXiv 2507.05201",
     "note": "their EHRQA set (not public); whole record in the prompt, no tools"},
]
COMPARABILITY = ("Published figures: comparable only in kind. Their EHRQA set is not public; ours is generated from "
                 "the records of the store named here, with the same ten categories plus four of our own, and the "
                 "model answers through tools instead of reading the whole record in its prompt.")


class EhrqaBenchmark:
    name = "ehrqa"

    def __init__(self, backend: Any, *, questions_file: Path | None = None, per_category: int | None = None,
                 seed: int = 0, store_label: str = "", max_steps: int = 8, max_tokens: int = 60_000,
                 constrained: bool = True, examples: str = "auto"):
        self.backend = backend
        self.questions_file = Path(questions_file) if questions_file else None
        self.per_category, self.seed, self.store_label = per_category, seed, store_label
        self.run_options = {"max_steps": max_steps, "max_tokens": max_tokens, "constrained": constrained,
                            "examples": examples}
        self._cases: list[BenchCase] | None = None

    def _rows(self) -> list[dict[str, Any]]:
        if self.questions_file is not None:
            from evals.ehrqa.generate import read_jsonl

            return [q.to_json() for q in read_jsonl(self.questions_file)]
        from evals.ehrqa.generate import DEFAULT_PER_CATEGORY, generate

        per = self.per_category if self.per_category is not None else DEFAULT_PER_CATEGORY
        return [q.to_json() for q in generate(self.backend, seed=self.seed, per_category=per)]

    def cases(self) -> list[BenchCase]:
        if self._cases is None:
            self._cases = [BenchCase(id=str(r["id"]), category=str(r.get("category") or "(none)"), data=r)
                           for r in self._rows()]
        return self._cases

    def describe(self) -> dict[str, Any]:
        rows = [c.data for c in self.cases()]
        questions_sha = hashlib.sha256("\n".join(json.dumps(r, sort_keys=True) for r in rows).encode()).hexdigest()
        if self.questions_file is not None:
            data = {str(self.questions_file): hashlib.sha256(self.questions_file.read_bytes()).hexdigest()}
            source = {"questions_file": str(self.questions_file)}
        else:
            data = {"generated questions": questions_sha}
            source = {"generated_from": self.store_label, "seed": self.seed, "per_category": self.per_category}
        return {"data": data, "source": source, "questions": len(rows), "questions_sha256": questions_sha,
                "run_options": self.run_options, "roles": {"record backend": self.store_label or "(given backend)"},
                "comparability": COMPARABILITY}

    def published(self) -> list[dict[str, Any]]:
        return PUBLISHED

    def run_case(self, case: BenchCase, ctx: CaseContext) -> CaseResult:
        from agent.run import run_question
        from evals.ehrqa.score import is_correct

        q = case.data
        base = {"id": case.id, "category": case.category, "gold": q.get("gold")}
        if not str(q.get("question") or "").strip():
            return CaseResult(**base, correct=None, status="bad_case", error="the row has no question")
        path = trace_file(ctx.trace_dir, case.id)
        try:
            run = run_question(q["question"], backend=ctx.backend, patient_id=q.get("patient_id") or None,
                               model=ctx.model, model_label=ctx.model_label, strategy=ctx.strategy,  # type: ignore[arg-type]
                               trace_path=path, now=q.get("now"), **self.run_options)
        except LookupError as exc:  # the patient is not in this store
            return CaseResult(**base, correct=None, status="unknown_patient", error=str(exc))
        correct = run.status == "completed" and is_correct(q, run.answer)
        return CaseResult(**base, correct=correct, status=run.status, answer=run.answer, steps=run.steps,
                          model_calls=run.model_calls, tool_calls=run.tool_calls, input_tokens=run.input_tokens,
                          output_tokens=run.output_tokens, seconds=run.seconds, trace_path=run.trace_path,
                          details={"cited_ids": run.cited_ids, "answer_type": q.get("answer_type"),
                                   "patient_id": q.get("patient_id")}, error=run.error)
