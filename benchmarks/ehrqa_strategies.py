"""react vs navigator on the same EHRQA-style questions with one model: accuracy and prompt tokens.

    python benchmarks/ehrqa_strategies.py QUESTIONS [--limit 14] [--llm embedded]
        [--store sqlite:///benchmarks/out/ehrqa_synthea.db] [--strategies react,navigator]

Answers the first ``--limit`` questions of QUESTIONS (a `medagent ehrqa generate` file; the
interleaved order puts one question of each category first) with each strategy through the QA
pipeline, into ``benchmarks/out/ehrqa_<strategy>_<model>.jsonl`` with traces beside it. The
files resume: an interrupted run continues, and a finished one is only scored again. Prints
per strategy accuracy (the EHRQA scorer), prompt and output tokens, model calls and seconds
per question over the questions both answered (``--score-only`` scores the files as they
are, e.g. after stopping a long navigator run), then react's prompt tokens as a share of
navigator's. Target (issue 8): at most
a quarter, at equal or better accuracy. Patient-lookup questions run unbound, where navigator
falls back to react: they count for both. Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.models import make_chat_model  # noqa: E402
from agent.qa import QaRunner, read_questions, run_qa  # noqa: E402
from evals.ehrqa.score import score_rows  # noqa: E402
from tools.fhir.store import EmbeddedStore  # noqa: E402

OUT = ROOT / "benchmarks" / "out"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("questions", type=Path)
    parser.add_argument("--limit", type=int, default=14)
    parser.add_argument("--llm", default="embedded")
    parser.add_argument("--store", default=f"sqlite:///{OUT / 'ehrqa_synthea.db'}")
    parser.add_argument("--strategies", default="react,navigator")
    parser.add_argument("--score-only", action="store_true", help="score the answer files as they are, run nothing")
    args = parser.parse_args()
    questions = read_questions(args.questions)[: args.limit]
    backend = EmbeddedStore(args.store)
    model = None if args.score_only else make_chat_model(args.llm)
    label = args.llm.replace(":", "-").replace("/", "-")
    answers = {}
    for strategy in args.strategies.split(","):
        out = OUT / f"ehrqa_{strategy}_{label}.jsonl"
        if not args.score_only:
            runner = QaRunner(backend=backend, model=model, model_label=args.llm,  # type: ignore[arg-type]
                              strategy=strategy, traces_dir=out.with_suffix(".traces"))
            run_qa(questions, out, runner, show_progress=False)
        rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()] if out.exists() else []
        answers[strategy] = {r["id"]: r for r in rows}
    # Compared on the questions every strategy answered (a run stopped early compares what it has).
    common = [q for q in questions if all(q["id"] in a for a in answers.values())]
    figures = {s: score_rows(common, a.values()) for s, a in answers.items()}
    print(f"{len(common)} EHRQA-style questions from {args.questions.name} answered by every strategy, "
          f"model {args.llm}")
    print(f"{'strategy':10s} {'right':>7s} {'prompt tok/q':>13s} {'output tok/q':>13s} {'model calls/q':>14s} "
          f"{'s/q':>7s}  statuses")
    for strategy, f in figures.items():
        q = f["per_question"]
        print(f"{strategy:10s} {f['correct']:>3d}/{f['n']:<3d} {q['input_tokens']:13,.0f} {q['output_tokens']:13,.0f} "
              f"{q['model_calls']:14.2f} {q['seconds']:7.1f}  {f['statuses']}")
    if {"react", "navigator"} <= figures.keys():
        react, nav = figures["react"], figures["navigator"]
        ratio = react["per_question"]["input_tokens"] / max(nav["per_question"]["input_tokens"], 1)
        print(f"react/navigator prompt tokens: {ratio:.3f} (target <= 0.25); accuracy {react['accuracy']:.0%} vs "
              f"{nav['accuracy']:.0%}")
        print("by category (react / navigator):")
        for cat, r in react["categories"].items():
            n = nav["categories"][cat]
            print(f"  {cat:32s} {r['correct']}/{r['n']}  {n['correct']}/{n['n']}")


if __name__ == "__main__":
    main()
