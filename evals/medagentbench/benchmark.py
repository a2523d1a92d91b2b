"""MedAgentBench as a Benchmark for the run harness (evals/bench/types.py), in two modes.

``protocol``: their prompt and GET/POST/FINISH text protocol (numbers comparable to the paper's
when run against their server image). ``agent``: our agent and tools, mapped onto their answers.
Both are graded by ``grade.grade`` from the same facts (their refsol's queries, or the facts a
generated task carries).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from agent.trace.writer import TraceWriter
from evals.bench.types import BenchCase, CaseContext, CaseResult
from tools.fhir.backend import FhirBackend

from . import protocol
from .facts import facts_for, find_patient
from .grade import expected_answer, grade
from .tasks import KINDS, Task, default_funcs_path, load_funcs, load_tasks, sha256_file, sha256_json, task_from_json

MODES = ("protocol", "agent")
GENERATED = "generated"
KIND_LABELS = {"task1": "patient lookup", "task2": "age", "task3": "record vital (POST)",
               "task4": "value in 24 h", "task5": "replacement order if low (POST)", "task6": "average in 24 h",
               "task7": "latest value", "task8": "referral (POST)", "task9": "potassium + recheck (POST)",
               "task10": "HbA1c, re-order if >1 y (POST)"}
SOURCE = "Jiang et al., MedAgentBench, NEJM AI 2025 (arXiv 2501.14654)"
NOTE = ("their 300 tasks on their HAPI server image, their prompt and protocol, 8 rounds; comparable only to our "
        "protocol mode against that image (not to agent mode, nor to generated tasks over our store)")
PUBLISHED = [
    {"model": "Claude 3.5 Sonnet v2", "score": 69.67, "source": SOURCE, "note": NOTE},
    {"model": "GPT-4o", "score": 64.00, "source": SOURCE, "note": NOTE},
    {"model": "Gemma 2 27B", "score": 19.33, "source": SOURCE, "note": NOTE + "; 0% on action (POST) tasks"},
]


def interleave(tasks: list[Task]) -> list[Task]:
    """Round-robin over the kinds (task1_1, task2_1, ..., task1_2, ...): a --limit run samples every kind."""
    by_kind = {k: [t for t in tasks if t.kind == k] for k in KINDS}
    out: list[Task] = []
    for i in range(max((len(v) for v in by_kind.values()), default=0)):
        out += [v[i] for v in by_kind.values() if i < len(v)]
    return out


class MedAgentBenchmark:
    name = "medagentbench"

    def __init__(self, tasks: str = GENERATED, *, fhir_url: str | None = None, store: str | None = None,
                 mode: str = "protocol", seed: int = 0, limit: int | None = None, per_kind: int | None = None,
                 backend: FhirBackend | None = None, funcs: str | Path | None = None, max_rounds: int = protocol.MAX_ROUNDS):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)} (got {mode!r})")
        self.tasks_arg, self.fhir_url, self.store, self.mode, self.seed = tasks, fhir_url, store, mode, seed
        self.per_kind = per_kind or (max(1, math.ceil(limit / len(KINDS))) if limit else 5)
        self.funcs_path = Path(funcs) if funcs else default_funcs_path()
        self.funcs = load_funcs(self.funcs_path)
        self.max_rounds = max_rounds
        self._backend = backend
        self._tasks: list[Task] | None = None
        self.api_base = (fhir_url.rstrip("/") + "/") if fhir_url else protocol.STORE_API_BASE

    # -- data -------------------------------------------------------------------------------

    def backend(self, ctx: CaseContext | None = None) -> FhirBackend:
        if ctx is not None and ctx.backend is not None:
            return ctx.backend
        if self._backend is None:
            from tools.fhir import open_backend

            self._backend = open_backend(self.store, self.fhir_url)
        return self._backend

    def tasks(self) -> list[Task]:
        if self._tasks is None:
            if self.tasks_arg == GENERATED:
                from .generate import generate_tasks

                self._tasks = generate_tasks(self.backend(), self.per_kind, self.seed)
            else:
                self._tasks = load_tasks(self.tasks_arg)
            self._tasks = interleave(self._tasks)
        return self._tasks

    def cases(self) -> list[BenchCase]:
        return [BenchCase(id=t.id, category=t.kind, data=t.to_json()) for t in self.tasks()]

    def describe(self) -> dict[str, Any]:
        generated = self.tasks_arg == GENERATED
        data = {"tasks": GENERATED if generated else str(self.tasks_arg),
                "tasks_sha256": sha256_json([t.to_json() for t in self.tasks()]) if generated
                else sha256_file(self.tasks_arg),
                str(self.funcs_path): sha256_file(self.funcs_path)}
        return {"data": data, "mode": self.mode, "seed": self.seed, "per_kind": self.per_kind if generated else None,
                "server": self.fhir_url, "store": None if self.fhir_url else self.store, "api_base": self.api_base,
                "max_rounds": self.max_rounds, "prompts": {"medagentbench_prompt": protocol.PROMPT_SHA256},
                "categories": KIND_LABELS,
                "comparability": ("Published figures are comparable only in protocol mode, on their 300 tasks, "
                                  f"against their server image. This run: mode={self.mode}, tasks="
                                  f"{'generated over our store' if generated else self.tasks_arg}, "
                                  f"GETs to {'the FHIR server ' + self.fhir_url if self.fhir_url else 'our store'}.")}

    def published(self) -> list[dict[str, Any]]:
        return PUBLISHED

    # -- one case ---------------------------------------------------------------------------

    def run_case(self, case: BenchCase, ctx: CaseContext) -> CaseResult:
        task = task_from_json(case.data)
        backend = self.backend(ctx)
        trace_path = Path(ctx.trace_dir) / f"{case.id}.jsonl"
        if "facts" not in task.rules and task.eval_mrn and find_patient(backend, task.eval_mrn) is None:
            # their tasks over a store without their patients: no gold to grade against, so no model run
            return CaseResult(id=case.id, category=case.category, correct=None, status="bad_case",
                              error=f"patient {task.eval_mrn} is not in {getattr(backend, 'label', 'the backend')} "
                                    "(their patients live only in their server image)")
        facts = facts_for(task, backend)
        gold = expected_answer(task, facts)
        if self.mode == "protocol":
            prompt = protocol.build_prompt(task, self.funcs, self.api_base)
            get = protocol.http_getter() if self.fhir_url else protocol.backend_getter(backend, self.api_base)
            with TraceWriter(trace_path) as trace:
                run = protocol.run_protocol(task, ctx.model, prompt, get, trace, model_label=ctx.model_label,
                                            max_rounds=self.max_rounds,
                                            config={"mode": "protocol", "api_base": self.api_base, "task": task.id})
            attempt = run.attempt()
            numbers = dict(status=run.status, steps=run.rounds, model_calls=run.model_calls, tool_calls=run.tool_calls,
                           input_tokens=run.input_tokens, output_tokens=run.output_tokens, seconds=run.seconds,
                           error=run.error)
            answer = f"FINISH({run.result})" if run.result is not None else (run.history[-1][1][:500] if run.history else "")
            extra: dict[str, Any] = {}
        else:
            from .agent_mode import run_agent_task

            try:
                result, attempt, extra = run_agent_task(task, backend=backend, model=ctx.model,
                                                        model_label=ctx.model_label, strategy=ctx.strategy or "react",
                                                        trace_path=trace_path, api_base=self.api_base)
            except LookupError as exc:   # the task's patient is not in this store
                return CaseResult(id=case.id, category=case.category, correct=None, status="bad_case", gold=gold,
                                  error=str(exc))
            numbers = dict(status=result.status, steps=result.steps, model_calls=result.model_calls,
                           tool_calls=result.tool_calls, input_tokens=result.input_tokens,
                           output_tokens=result.output_tokens, seconds=result.seconds, error=result.error)
            answer = result.answer
        verdict = grade(task, attempt, facts, self.api_base)
        # decided_by: the report's per-case note column shows why a case passed or failed
        details = {"reason": verdict.reason, "decided_by": f"grader: {verdict.reason}", "finish": attempt.result, "posts": [list(p) for p in attempt.posts],
                   "kind": KIND_LABELS[task.kind], "now": task.now, "mode": self.mode, **extra}
        return CaseResult(id=case.id, category=case.category, correct=verdict.correct, answer=answer,
                          gold=verdict.expected if verdict.expected is not None else gold,
                          trace_path=str(trace_path), details=json.loads(json.dumps(details, default=str)), **numbers)
