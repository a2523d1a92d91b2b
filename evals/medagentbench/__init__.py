"""MedAgentBench-compatible runs: their tasks (or generated ones over our store), their protocol or
our agent, graded from their published task definitions. See benchmark.py and grade.py."""

from __future__ import annotations

from evals.bench.types import Benchmark

from tools.fhir.backend import FhirBackend

from .benchmark import GENERATED, MODES, PUBLISHED, MedAgentBenchmark


def make_benchmark(tasks: str = GENERATED, fhir_url: str | None = None, store: str | None = None,
                   mode: str = "protocol", seed: int = 0, limit: int | None = None,
                   backend: FhirBackend | None = None, per_kind: int | None = None) -> Benchmark:
    """``tasks``: a MedAgentBench task file, or "generated" (tasks over the store's patients).
    ``fhir_url``: a FHIR R4 server (GETs go there as raw HTTP, their way); else ``store``: our
    embedded store (GETs mapped onto it). ``mode``: "protocol" or "agent". ``limit`` only sizes
    the generated set (the harness applies --limit to the cases); ``per_kind`` sets it outright.
    ``backend``: an open backend for the same server/store (else one is opened from the URLs)."""
    return MedAgentBenchmark(tasks, fhir_url=fhir_url, store=store, mode=mode, seed=seed, limit=limit,
                             backend=backend, per_kind=per_kind)


__all__ = ["make_benchmark", "MedAgentBenchmark", "MODES", "PUBLISHED", "GENERATED"]
