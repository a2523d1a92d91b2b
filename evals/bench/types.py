"""The contract between a benchmark (EHRQA, MedAgentBench, AgentClinic) and the run harness.

A benchmark says which cases it has and how to run one; the harness (``evals/bench/runner.py``)
owns everything around that: the run folder, ``results.jsonl`` flushed per case, resuming,
``run.json``, progress bars, reports and comparisons. Keeping the two apart is what lets every
benchmark get the same reproducible, resumable, reported runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from langchain_core.language_models import BaseChatModel


@dataclass(frozen=True)
class BenchCase:
    """One case: a stable id (the resume key), the category it is reported under, its data."""
    id: str
    category: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class CaseResult:
    """What running one case produced. ``correct`` is None when the case could not be graded."""
    id: str
    category: str
    correct: bool | None
    status: str                       # the agent run's status (completed, max_steps, ...) or bad_case
    answer: str = ""
    gold: Any = None
    steps: int = 0
    model_calls: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    trace_path: str | None = None
    details: dict[str, Any] = field(default_factory=dict)   # grader notes, which judge decided, ...
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CaseContext:
    """What the harness hands a benchmark for each case: loaded once per run, shared by cases."""
    model: BaseChatModel
    model_label: str                  # the --llm spec, recorded in run.json and traces
    backend: Any                      # tools.fhir.backend.FhirBackend (None for AgentClinic)
    strategy: str                     # react | navigator (or a benchmark's own protocol name)
    trace_dir: Path                   # write this case's trace to trace_dir / f"{case.id}.jsonl"
    options: dict[str, Any] = field(default_factory=dict)   # benchmark-specific flags


class Benchmark(Protocol):
    name: str

    def cases(self) -> list[BenchCase]:
        """All cases, in a deterministic order (the harness applies --limit)."""

    def run_case(self, case: BenchCase, ctx: CaseContext) -> CaseResult:
        """Run and grade one case. Never raises for a model or tool failure: return a status."""

    def describe(self) -> dict[str, Any]:
        """For run.json: data files and their sha256, seed, generator settings, role backends."""

    def published(self) -> list[dict[str, Any]]:
        """Published figures to place beside ours: [{"model", "score", "source", "note"}]."""
