"""Planner-turn quality of a model backend over the 50 EHR planning questions.

    python benchmarks/planner.py [--llm embedded] [--unconstrained N]

Prints the schema-valid rate (the protocol's job: parse + validate, at most one repair) and
the right-tool rate (a model-quality figure, not pass/fail), tokens and latency, with
constrained decoding and, for the first N questions, without it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.cli.llm import tool_schemas_for_planner  # noqa: E402
from agent.models import make_chat_model  # noqa: E402
from evals.planning import load_questions, run_planning_eval  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm", default="embedded")
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--unconstrained", type=int, default=10, metavar="N",
                        help="also run the first N questions without the JSON-schema constraint")
    parser.add_argument("--out", type=Path, help="write the per-question results (JSON) here")
    args = parser.parse_args()
    questions = load_questions()[:args.questions]
    schemas = tool_schemas_for_planner()
    t = time.perf_counter()
    model = make_chat_model(args.llm)
    results = {}
    for label, constrained, qs in (("constrained", True, questions), ("unconstrained", False, questions[:args.unconstrained])):
        if not qs:
            continue
        report = run_planning_eval(model, schemas, qs, model_label=args.llm, constrained=constrained)
        results[label] = report.to_json()
        s = report.summary()
        print(f"{label:13s} n={s['questions']:2d}  schema-valid {s['schema_valid_rate']:.0%}  right tool {s['right_tool_rate']:.0%}"
              f"  right tool+type {s['right_tool_and_type_rate']:.0%}  repaired {s['repaired']}  statuses {s['statuses']}"
              f"  in {s['mean_input_tokens']} tok  out {s['mean_output_tokens']} tok  {s['mean_latency_s']:.2f} s/turn"
              f"  {s['tokens_per_s']} tok/s")
    print(f"total {time.perf_counter() - t:.0f} s (model load included)")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
