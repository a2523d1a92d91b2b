"""The EHRQA oracle over the 40 shared Synthea patients: the tools' ceiling, by category.

    python benchmarks/ehrqa_oracle.py [--per-category 20] [--seed 0] [--store sqlite:///...]

Loads ../shared/data/synthea-r4 into benchmarks/out/ehrqa_synthea.db (once), generates the
questions, and runs the oracle twice through the real agent: with the ideal calls' codes
(what the tools SHOW: target 100% in at most two tool calls) and with the questions' plain
names as codes (what name resolution REACHES as well). Prints both by category and the
first failures of each, with what the tool returned; writes questions and answers under
benchmarks/out/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evals.ehrqa.generate import generate, write_jsonl  # noqa: E402
from evals.ehrqa.oracle import run_oracle  # noqa: E402
from evals.ehrqa.score import score_rows  # noqa: E402
from tools.fhir.store import EmbeddedStore, expand_paths  # noqa: E402

OUT = ROOT / "benchmarks" / "out"
SYNTHEA = ROOT.parent / "shared" / "data" / "synthea-r4"


def open_store(url: str | None) -> EmbeddedStore:
    if url:
        return EmbeddedStore(url)
    OUT.mkdir(parents=True, exist_ok=True)
    db = OUT / "ehrqa_synthea.db"
    store = EmbeddedStore(f"sqlite:///{db}")
    if not store.patient_ids():
        if not SYNTHEA.is_dir():
            sys.exit(f"no store given and no shared data at {SYNTHEA}")
        t = time.perf_counter()
        report = store.load_paths(expand_paths([SYNTHEA]))
        print(f"loaded {SYNTHEA} into {db} in {time.perf_counter() - t:.1f} s ({len(report.errors)} errors)")
    return store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", help="an embedded store URL (default: the shared patients, loaded once)")
    ap.add_argument("--per-category", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=3, help="failures to show per category")
    args = ap.parse_args()
    store = open_store(args.store)
    t = time.perf_counter()
    questions = generate(store, seed=args.seed, per_category=args.per_category)
    print(f"{len(questions)} questions over {len(store.patient_ids())} patients in {time.perf_counter() - t:.1f} s")
    OUT.mkdir(parents=True, exist_ok=True)
    write_jsonl(questions, OUT / "ehrqa_questions.jsonl")
    rows = [q.to_json() for q in questions]
    reports, answers = {}, {}
    for mode in ("codes", "names"):
        t = time.perf_counter()
        answers[mode] = run_oracle(store, questions, names=mode == "names")
        reports[mode] = score_rows(rows, answers[mode])
        with open(OUT / f"ehrqa_oracle_{mode}.jsonl", "w") as f:
            f.writelines(json.dumps(a) + "\n" for a in answers[mode])
        print(f"oracle ({mode}): {time.perf_counter() - t:.1f} s")

    print(f"\n{'category':32} {'n':>4} {'codes':>8} {'names':>8}   (oracle accuracy; tool calls <= 2 each)")
    for cat, v in reports["codes"]["categories"].items():
        names = reports["names"]["categories"][cat]
        print(f"{cat:32} {v['n']:4d} {100 * v['accuracy']:7.1f}% {100 * names['accuracy']:7.1f}%")
    c, n = reports["codes"], reports["names"]
    print(f"{'overall':32} {c['n']:4d} {100 * c['accuracy']:7.1f}% {100 * n['accuracy']:7.1f}%")
    for mode in ("codes", "names"):
        pq = reports[mode]["per_question"]
        most = max(a.get("tool_calls", 0) for a in answers[mode])
        print(f"{mode}: {pq['input_tokens']:.0f} input tokens, {pq['model_calls']:.2f} model calls, "
              f"{pq['tool_calls']:.2f} tool calls (at most {most}), {pq['seconds']:.2f} s per question; "
              f"statuses {reports[mode]['statuses']}")

    for mode in ("codes", "names"):
        shown: dict[str, int] = defaultdict(int)
        wrong = [(q, a) for q, a, s in zip(questions, answers[mode], reports[mode]["rows"]) if not s["correct"]]
        if wrong:
            print(f"\nfailures ({mode}): {len(wrong)}")
        for q, a in wrong:
            if shown[q.category] >= args.show:
                continue
            shown[q.category] += 1
            call = q.ideal[-1]
            used = call.get("name") if mode == "names" and call.get("name") else call["args"].get("code", "")
            print(f"- {q.id}: {q.question} (now {q.now}) gold {q.gold!r}; {call['tool']} code {used!r}\n"
                  f"  answered: {a['answer'][:200]!r}")


if __name__ == "__main__":
    main()
