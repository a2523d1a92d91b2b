"""The run harness: one benchmark, one model, one run folder.

    out/
      run.json        the full configuration (benchmark, model spec, strategy, every role's backend,
                      prompts' hashes, versions, seed, data files' sha256, host, start/end of each session)
      results.jsonl   one CaseResult per line, flushed (and fsynced) as each case finishes
      traces/<id>.jsonl   one trace per case
      report.md, report.html

Re-running the same command resumes: finished cases (rows in results.jsonl) are skipped, a case
that was running when the run was killed starts again with a fresh trace. A folder holding a
different benchmark, model, strategy or seed is refused rather than mixed.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import random
import re
import signal
import socket
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from .types import BenchCase, Benchmark, CaseContext, CaseResult

from agent.batch import ResultsFile, run_pool

# What must match for a folder's finished cases to be reused.
IDENTITY = ("benchmark", "model", "strategy", "seed", "options", "roles", "data")
VERSIONED = ("medagent", "langgraph", "langchain-core", "transformers", "torch", "llama-cpp-python",
             "openai", "scipy", "matplotlib", "rich")


class RunMismatch(ValueError):
    """The out folder holds a run of another configuration."""


@dataclass
class RunOptions:
    model_label: str
    strategy: str = "react"
    out: Path | None = None
    limit: int | None = None
    concurrency: int = 1
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)      # benchmark flags, recorded in run.json
    roles: dict[str, str] = field(default_factory=dict)        # role -> backend (doctor, patient, judge...)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:80] or "x"


def default_out(benchmark: str, model_label: str, strategy: str) -> Path:
    """Same command, same folder: that is what makes re-running resume."""
    return Path("benchmarks/out/bench") / f"{benchmark}-{slug(model_label)}-{strategy}"


def trace_file(trace_dir: Path, case_id: str) -> Path:
    return trace_dir / f"{slug(case_id)}.jsonl"


def effective_concurrency(model_label: str, requested: int) -> int:
    """Threads only for served models: an in-process model runs one case at a time (a second
    thread would only fight it for the same cores and its state)."""
    return max(1, requested) if model_label.startswith("openai:") else 1


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def host() -> dict[str, Any]:
    return {"hostname": socket.gethostname(), "platform": platform.platform(), "cpus": os.cpu_count()}


def planner_prompt_hashes(model: Any) -> dict[str, str]:
    """The planner prompts our agent sends (its tools' signatures need no backend)."""
    try:
        from agent.models import uses_examples
        from agent.protocol.schema import tool_schemas
        from agent.run import _prompt_hashes
        from tools.ehr import EhrSession

        schemas = tool_schemas(EhrSession(backend=None).tools())
        return _prompt_hashes(schemas, False, uses_examples(model, "auto"))
    except Exception as exc:  # never fail a run over its bookkeeping
        return {"error": f"{type(exc).__name__}: {exc}"}


def model_params(model: Any) -> dict[str, Any]:
    """What the spec resolved to (``embedded`` names whichever model is the default today)."""
    try:
        return {k: v for k, v in dict(getattr(model, "_identifying_params", None) or {}).items()
                if isinstance(v, (str, int, float, bool)) or v is None}
    except Exception:
        return {}


def read_json(path: Path) -> dict[str, Any]:
    return orjson.loads(path.read_bytes()) if path.exists() else {}


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str))
    tmp.replace(path)  # atomic: a kill never leaves half a run.json


def select_cases(cases: list[BenchCase], limit: int | None) -> list[BenchCase]:
    ids = Counter(c.id for c in cases)
    dupes = [i for i, n in ids.items() if n > 1]
    if dupes:
        raise ValueError(f"duplicate case ids (the resume key): {dupes[:5]}")
    return cases[:limit] if limit is not None else cases


def run_benchmark(bench: Benchmark, *, model: Any, backend: Any, opts: RunOptions,
                  console: Console | None = None, report: bool = True) -> dict[str, Any]:
    """Run (or resume) ``bench`` into ``opts.out``; returns run.json's final content."""
    console = console or Console(stderr=True)
    out = Path(opts.out or default_out(bench.name, opts.model_label, opts.strategy))
    trace_dir = out / "traces"
    trace_dir.mkdir(parents=True, exist_ok=True)
    random.seed(opts.seed)
    cases = select_cases(bench.cases(), opts.limit)
    config = _config(bench, model, opts, out)
    previous = read_json(out / "run.json")
    clash = {k: (previous.get(k), config[k]) for k in IDENTITY if previous and previous.get(k) != config[k]}
    if clash:
        raise RunMismatch(f"{out} holds another run ({', '.join(f'{k}: {a!r} there, {b!r} now' for k, (a, b) in clash.items())}); "
                          "use another --out")
    config["sessions"] = [*previous.get("sessions", []), {"started": utc_now(), "ended": None}]
    config["started"] = previous.get("started") or config["sessions"][-1]["started"]
    results = ResultsFile(out / "results.jsonl", key="id")
    todo = [c for c in cases if c.id not in results.done]
    workers = effective_concurrency(opts.model_label, opts.concurrency)
    config.update(concurrency_used=workers, cases_selected=len(cases), status="running")
    write_json(out / "run.json", config)
    if results.done:
        console.print(f"resuming {out}: {len(cases) - len(todo)} of {len(cases)} case(s) already done")

    def work(case: BenchCase) -> CaseResult:
        return run_one(bench, case, model=model, backend=backend, opts=opts, trace_dir=trace_dir)

    def on_result(case: BenchCase, result: CaseResult) -> None:
        results.write(result.to_json())

    status = "complete"
    previous_handler = _sigterm_as_interrupt()
    try:
        run_pool(todo, work, concurrency=workers, on_result=on_result,
                 description=f"{bench.name} · {opts.model_label}", console=console)
    except KeyboardInterrupt:
        status = "interrupted"
        console.print(f"[yellow]interrupted[/yellow]: {len(results.done)} case(s) kept in {out / 'results.jsonl'}; "
                      "re-run the same command to finish")
        raise
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
        config["sessions"][-1]["ended"] = utc_now()
        done_ids = {c.id for c in cases} & results.done.keys()
        if status == "complete" and len(done_ids) < len(cases):
            status = "partial"          # a case raised through the harness (a bug): say so, keep the rest
        config.update(ended=utc_now(), status=status, cases_done=len(done_ids))
        write_json(out / "run.json", config)
        if report and results.done:
            from .report import write_reports

            write_reports(out)
    rows = [results.done[c.id] for c in cases if c.id in results.done]
    console.print(summary_table(rows, title=f"{bench.name} · {opts.model_label} · {opts.strategy}"))
    console.print(f"run folder: {out}  (report.html, report.md, results.jsonl, traces/)")
    return config


def _sigterm_as_interrupt():
    """``kill PID`` stops a run like Ctrl-C: finished cases are already on disk, and run.json
    and the report are brought up to date. Only the main thread may set handlers."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def run_one(bench: Benchmark, case: BenchCase, *, model: Any, backend: Any, opts: RunOptions,
            trace_dir: Path) -> CaseResult:
    """One case; a stale trace from a killed attempt is replaced; a raising benchmark becomes
    an ``error`` row (a harness must outlive a bug in one case)."""
    path = trace_file(trace_dir, case.id)
    path.unlink(missing_ok=True)
    ctx = CaseContext(model=model, model_label=opts.model_label, backend=backend, strategy=opts.strategy,
                      trace_dir=trace_dir, options=dict(opts.options))
    start = time.perf_counter()
    try:
        result = bench.run_case(case, ctx)
    except Exception as exc:
        result = CaseResult(id=case.id, category=case.category, correct=None, status="error",
                            error=f"{type(exc).__name__}: {exc}")
    if not result.seconds:
        result.seconds = round(time.perf_counter() - start, 3)
    if result.trace_path is None and path.exists():
        result.trace_path = str(path)
    return result


def _config(bench: Benchmark, model: Any, opts: RunOptions, out: Path) -> dict[str, Any]:
    describe = bench.describe()
    # The run's model plays "agent" unless the benchmark names its role (AgentClinic: doctor).
    roles = {**(opts.roles or {"agent": opts.model_label}), **(describe.get("roles") or {}), **opts.roles}
    return {
        "benchmark": bench.name, "model": opts.model_label, "model_params": model_params(model),
        "strategy": opts.strategy, "seed": opts.seed,
        "limit": opts.limit, "concurrency": opts.concurrency, "options": opts.options, "roles": roles,
        "prompts": describe.get("prompts") or planner_prompt_hashes(model),
        "data": describe.get("data") or {}, "describe": describe, "published": bench.published(),
        "versions": versions(), "host": host(), "command": sys.argv, "out": str(out),
    }


def summary_table(rows: list[dict[str, Any]], title: str = "") -> Table:
    from .stats import summarise

    summary = summarise(rows)
    table = Table(title=title, title_justify="left")
    for col, justify in (("category", "left"), ("n", "right"), ("correct", "right"), ("accuracy", "right"),
                         ("95% CI", "right")):
        table.add_column(col, justify=justify)
    for row in summary["categories"]:
        table.add_row(row["category"], str(row["n"]), str(row["correct"]), f"{row['accuracy']:.1%}",
                      f"{row['ci_low']:.1%}-{row['ci_high']:.1%}", style="bold" if row["category"] == "overall" else None)
    per = summary["per_case"]
    table.caption = ("statuses: " + ", ".join(f"{k} {v}" for k, v in summary["statuses"].items())
                     + f" | steps/case {per['steps']['mean']:.1f}, tokens/case "
                     f"{per['input_tokens']['mean'] + per['output_tokens']['mean']:,.0f}, s/case {per['seconds']['mean']:.1f}")
    return table
