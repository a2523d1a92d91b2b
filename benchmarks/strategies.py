"""react vs navigator on single-fact EHR questions over the fixture patients.

    python benchmarks/strategies.py [--llm embedded] [--no-oracle] [--examples auto|on|off]

For each strategy and planner (the oracle, which plays each strategy perfectly, and a real
model), prints per question: model calls, prompt tokens, the strategy's own time (the run's
time minus the model's), and answer accuracy (the expected value, read from the record,
appears in the answer). The react planner is shown worked examples only when the model is a
base model (``--examples auto``: the embedded one), as in ``medagent ask``. "uncached" counts only the prompt tokens a serving engine's prefix
cache would compute (the oracle simulates one; real models report it when they can). Target (issue 4): react needs at most a quarter of navigator's prompt
tokens at equal or better accuracy, and adds under 50 ms of its own time per question.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.models import make_chat_model  # noqa: E402
from agent.run import run_question  # noqa: E402
from agent.trace.records import ModelCallRecord  # noqa: E402
from evals.oracle import FACT_QUESTIONS, OracleChatModel, patient_id  # noqa: E402
from fhir_fixtures import bundle_paths  # noqa: E402
from tools.fhir.store import EmbeddedStore  # noqa: E402


def run(store, model, label: str, strategy: str, examples: str = "auto") -> dict:
    rows = []
    for q in FACT_QUESTIONS:
        records: list = []
        uncached_before = getattr(model, "uncached_tokens", None)
        result = run_question(q.question, backend=store, patient_id=patient_id(q), model=model, model_label=label,
                              strategy=strategy, examples=examples, exporters=[records.append])
        model_s = sum(r.latency_s for r in records if isinstance(r, ModelCallRecord))
        expected = q.expected(store, patient_id(q))
        uncached = model.uncached_tokens - uncached_before if uncached_before is not None else None
        rows.append({"calls": result.model_calls, "prompt": result.input_tokens, "uncached": uncached,
                     "own_ms": (result.seconds - model_s) * 1000,
                     "correct": expected in result.answer, "status": result.status})
    return {
        "model calls/q": statistics.mean(r["calls"] for r in rows),
        "prompt tokens/q": statistics.mean(r["prompt"] for r in rows),
        "uncached/q": statistics.mean(r["uncached"] for r in rows) if rows[0]["uncached"] is not None else float("nan"),
        "own ms/q (p50)": statistics.median(r["own_ms"] for r in rows),
        "accuracy": sum(r["correct"] for r in rows) / len(rows),
        "completed": sum(r["status"] == "completed" for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm", default="embedded", help="the real model to compare (or 'none')")
    parser.add_argument("--no-oracle", action="store_true")
    parser.add_argument("--examples", choices=("auto", "on", "off"), default="auto",
                        help="worked examples in the react planner prompt (auto: base models only)")
    args = parser.parse_args()
    store = EmbeddedStore(f"sqlite:///{tempfile.mkdtemp()}/bench.db")
    assert not store.load_paths(bundle_paths()).errors
    planners = [] if args.no_oracle else [("oracle", OracleChatModel())]
    if args.llm != "none":
        planners.append((args.llm, make_chat_model(args.llm)))
    print(f"{len(FACT_QUESTIONS)} single-fact questions over the fixture patients")
    print(f"{'planner':10s} {'strategy':10s} {'model calls/q':>14s} {'prompt tok/q':>13s} {'uncached tok/q':>15s} "
          f"{'own ms/q p50':>13s} {'accuracy':>9s} {'completed':>10s}")
    for label, model in planners:
        figures = {s: run(store, model, label, s, args.examples) for s in ("react", "navigator")}
        for strategy, f in figures.items():
            print(f"{label:10s} {strategy:10s} {f['model calls/q']:14.1f} {f['prompt tokens/q']:13,.0f} {f['uncached/q']:15,.0f} "
                  f"{f['own ms/q (p50)']:13.1f} {f['accuracy']:9.0%} {f['completed']:>10d}")
        ratio = figures["react"]["prompt tokens/q"] / figures["navigator"]["prompt tokens/q"]
        print(f"{label:10s} react/navigator prompt tokens: {ratio:.3f} (target <= 0.25)", end="")
        if figures["react"]["uncached/q"] == figures["react"]["uncached/q"]:  # not NaN
            print(f"; uncached: {figures['react']['uncached/q'] / figures['navigator']['uncached/q']:.3f}", end="")
        print()


if __name__ == "__main__":
    main()
